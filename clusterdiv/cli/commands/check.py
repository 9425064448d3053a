"""`clusterdiv check`: score a batch, record it, and fail the build when its dataset's rules break.

Exit codes: 0 all rules met, 3 a threshold or drop rule breached, 2 bad input (file, option, or
a dataset without rules), 1 any other error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clusterdiv.cli.common import (
    BatchId,
    Format,
    HistoryDb,
    OutputFormat,
    Owner,
    Tags,
    check_outputs,
    handle_errors,
    history_file,
)
from clusterdiv.cli.options import ScoreOptions, shared_options, vary

if TYPE_CHECKING:
    from rich.console import Console

    from clusterdiv.history.gate import GateResult


@shared_options
def check(
    file: Annotated[Path, typer.Argument(help="The batch to check (any format `score` reads)")],
    *,
    dataset: Annotated[str | None, typer.Option(help="Tracked dataset name (default: file stem)")] = None,
    summary: Annotated[Path | None, typer.Option(
        help="Append a markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")] = None,
    record: Annotated[bool, typer.Option(help="Record the run in history")] = True,
    batch_id: BatchId = None,
    owner: Owner = None,
    tag: Tags = None,
    history_db: HistoryDb = None,
    output_format: Format = OutputFormat.table,
    opts: Annotated[ScoreOptions, vary("label_field")],
) -> None:
    """Score BATCH, record it, and exit 3 if it breaches its dataset's thresholds (see `track`)."""
    with handle_errors(opts.debug, output_format):
        from rich.console import Console

        from clusterdiv.core.errors import InputError
        from clusterdiv.history.gate import EXIT_BREACH, evaluate, render_summary_markdown
        from clusterdiv.history.record import default_batch_id, recorded_dataset
        from clusterdiv.history.store import HistoryStore, NoHistoryDatabase, flatten_metrics
        from clusterdiv.tasks.score import score as run_score

        check_outputs({"--summary": summary}, [file, opts.reference, opts.prompt_file, history_file(history_db)])
        name = recorded_dataset(file, dataset, skippable=False)

        def untracked(why: str = "") -> InputError:
            return InputError(f"dataset '{name}' has no thresholds to check{why}; set them first, e.g. "
                              f"clusterdiv track {name} --min score_normalized=0.3")

        try:
            store = HistoryStore(history_db, create=False)  # no store, no thresholds: nothing to check
        except NoHistoryDatabase as exc:
            raise untracked(f" ({exc})") from None
        with store:
            tracking = store.tracking(name)  # checked first: a misconfigured gate costs no scoring
            if tracking is None or (not tracking.thresholds and tracking.drop_share is None):
                raise untracked()
            config = opts.config()
            with opts.session() as (cache, bars):
                report = run_score(file, config=config, cache=cache, progress=bars,
                                   load_options=opts.load_options(), reference=opts.reference,
                                   reference_load_options=opts.reference_load_options())
            batch = batch_id or default_batch_id(report)
            previous = store.runs(name, last=tracking.drop_window)
            result = evaluate(flatten_metrics(report), tracking, previous, batch_id=batch)
            if record:
                run_id = store.record(report, dataset=name, batch_id=batch, owner=owner, tags=tag or (),
                                      gate_status="passed" if result.passed else "breached")
                result = result.model_copy(update={"run_id": run_id})
        markdown = render_summary_markdown(result, source=report.source)
        if summary is not None:
            with summary.open("a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        if output_format is OutputFormat.json:
            payload = {"gate": result.model_dump(mode="json"), "report": json.loads(report.to_json())}
            sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        elif output_format is OutputFormat.markdown:
            sys.stdout.write(markdown)
        else:
            _render_table(result, Console())
        err = Console(stderr=True)
        for breach in result.breaches:
            err.print(f"[red]breach:[/red] {breach.reason}", highlight=False, soft_wrap=True)
        if not result.passed:
            raise typer.Exit(EXIT_BREACH)


def _render_table(result: GateResult, console: Console) -> None:
    from rich.table import Table

    verdict = "[green]PASS[/green]" if result.passed else f"[red]FAIL[/red] ({len(result.breaches)} breached)"
    run = f"recorded as run {result.run_id}" if result.run_id is not None else "not recorded"
    console.print(f"{verdict}  dataset [bold]{result.dataset}[/bold]  batch {result.batch_id}  {run}; "
                  f"compared with {result.previous_runs} earlier runs", highlight=False)
    table = Table()
    for col in ("metric", "kind", "value", "95% CI", "rule", "status"):
        table.add_column(col, no_wrap=col in ("metric", "status"))
    for c in result.checks:
        table.add_row(c.metric, c.kind, "n/a" if c.value is None else f"{c.value:.4f}",
                      f"{c.ci95[0]:.3f}-{c.ci95[1]:.3f}" if c.ci95 else "", c.rule,
                      "[green]ok[/green]" if c.ok else "[red]breach[/red]")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
