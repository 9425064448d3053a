"""Recording a scored report into history: the one call `score` and `check` make."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clusterdiv.core.errors import InputError
from clusterdiv.history.models import dataset_name_problem
from clusterdiv.history.store import HistoryStore


def default_dataset_name(path: str | Path) -> str:
    """A file's stem (`evol.jsonl` -> `evol`); a dataset folder's own name."""
    p = Path(path)
    return p.name if p.is_dir() else p.stem


def recorded_dataset(file: str | Path, dataset: str | None, *, skippable: bool = True) -> str:
    """The dataset name `score` or `check` records `file` under, checked before any work (exit 2).

    Why stdin and pipes need `--dataset`: they have no name of their own, so every such run would
    land in one dataset called `-` (or `63`, a process substitution's descriptor) and their trends
    and gates would mix unrelated batches. `skippable`: the hint offers `--no-record` (not for `check`,
    whose gate needs the name either way).
    """
    if dataset is None:
        path = Path(file)
        if str(file) == "-" or (path.exists() and not (path.is_file() or path.is_dir())):
            raise InputError(f"{'stdin' if str(file) == '-' else str(file) + ' (a pipe)'} has no name to record "
                             "the run under: pass --dataset NAME" + (", or --no-record" if skippable else ""))
        dataset = default_dataset_name(path)
        problem = dataset_name_problem(dataset)
        if problem:
            raise InputError(f"{problem} (the name comes from the file name: pass --dataset NAME)")
    problem = dataset_name_problem(dataset)
    if problem:
        raise InputError(problem, option="dataset")
    return dataset


def default_batch_id(report: Any) -> str:
    """The content hash prefix identifies the batch itself; in-memory data gets a timestamp."""
    if report.content_hash:
        return report.content_hash[:12]
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def record_report(report: Any, *, dataset: str, batch_id: str | None = None, owner: str | None = None,
                  tags: Iterable[str] = (), db: str | Path | None = None,
                  gate_status: str | None = None) -> int:
    """Store `report` as a run of `dataset` in the history database `db`; returns the run id."""
    with HistoryStore(db) as store:
        return store.record(report, dataset=dataset, batch_id=batch_id or default_batch_id(report),
                            owner=owner, tags=tags, gate_status=gate_status)


def record_from_cli(report: Any, *, file: Path, dataset: str | None, batch_id: str | None,
                    owner: str | None, tags: list[str] | None, db: str | None, console: Any) -> int | None:
    """`score`'s recording step. A history failure warns instead of failing: the report the user
    asked for is already computed and still gets printed; `check` records strictly instead."""
    name = recorded_dataset(file, dataset)
    if report.timings.llm_stopped:  # a score over the examples a budget bought is not the batch's score
        console.print(f"[yellow]warning:[/yellow] run not recorded in history: it {report.timings.llm_stopped} "
                      "with examples not asked; rerun to resume, then it is recorded", highlight=False)
        return None
    try:
        run_id = record_report(report, dataset=name, batch_id=batch_id, owner=owner, tags=tags or (), db=db)
    except Exception as exc:  # noqa: BLE001 - any storage problem becomes one warning line
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        console.print(f"[yellow]warning:[/yellow] run not recorded in history: {message}", highlight=False)
        return None
    console.print(f"[dim]recorded run {run_id} of dataset '{name}' in history (--no-record to skip)[/dim]",
                  highlight=False)
    return run_id
