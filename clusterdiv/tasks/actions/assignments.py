"""Per-example output: the mode of every input row, as a DataFrame or a Parquet / JSONL / CSV file.

One row per input row, in input order: the examples that were clustered (`status` scored), those
whose criteria extraction failed and were left out of the modes (`failed`), and rows skipped on
load or left out of a `--sample` (`skipped`, with the reason and the source line). `mode_id` is the
mode in the batch-alone clustering, the one the report's clusters use (-1 = a noise point, a mode
of its own). With a reference, the batch is also clustered together with it and `shared_mode_id`,
`mode_flag` (over / under / balanced / untestable / batch_only: the tested flags of `modes.shares`, as
in the report), `batch_share` and `reference_share` say whether the example's mode is over- or
under-represented relative to the real data. `text` and `label` (the `--label-field` value; empty
without one) are the row's own, so the file can be read, filtered or joined without the input.

`mode_name` is the mode's extractive name (`modes.names`: its most distinctive words, the name the
report, `seeds` and the explorer give it; none for noise); `mode_summary` is the report's summary of
the mode: its most common criteria, or one member's text for `text`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError

COLUMNS = ["row", "id", "text", "label", "source_line", "status", "reason", "mode_id", "mode_size", "mode_name",
           "mode_summary", "criteria"]
REFERENCE_COLUMNS = ["shared_mode_id", "mode_flag", "batch_share", "reference_share"]


def assign_modes(data: Any, *, config: Any = None, cache: ModelCache | None = None, reference: Any = None,
                 load_options: dict[str, Any] | None = None,
                 reference_load_options: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """A pandas DataFrame with one row per input row (see the module docstring for the columns).

    Takes what `score()` takes; with the same config the modes are the report's modes (the stages and
    seeds are the same, and every model answer and embedding is cached, so a second pass is cheap).
    """
    import pandas as pd

    from clusterdiv.io.corpus import as_examples
    from clusterdiv.modes.config import ScoreConfig
    from clusterdiv.modes.run import RunContext
    from clusterdiv.tasks.actions._space import build_space
    from clusterdiv.tasks.score import sample_examples

    config = ScoreConfig.model_validate({**(config or ScoreConfig()).model_dump(), **overrides})
    with RunContext(cache=cache) as run:
        examples, corpus = as_examples(data, load_options=load_options or {})
        if not examples:
            raise InputError("no examples to assign")
        sampled = sample_examples(examples, n=config.sample, seed=config.seed)
        ref_examples = None
        if reference is not None:
            ref_examples, _ = as_examples(reference, load_options=reference_load_options or {})
        space = build_space(sampled, None, config=config, cache=run.cache)
        shared = build_space(sampled, ref_examples, config=config, cache=run.cache) if ref_examples else None

    mode_of = {i: int(lab) for i, lab in zip(space.ids, space.labels, strict=True)}
    sizes: dict[int, int] = {}
    for lab in space.labels.tolist():
        sizes[lab] = sizes.get(lab, 0) + 1
    in_sample = {e.id for e in sampled}
    shared_of = ({i: int(lab) for i, lab, b in zip(shared.ids, shared.labels, shared.is_batch, strict=True) if b}
                 if shared is not None else {})

    records: list[tuple[float, dict[str, Any]]] = []
    for pos, e in enumerate(examples):
        ext = space.extractions.get(e.id)
        row: dict[str, Any] = {"id": e.id, "text": e.text, "label": e.label, "source_line": e.source_line,
                               "criteria": None, "reason": None,
                               "mode_id": None, "mode_size": None, "mode_name": None, "mode_summary": None}
        if ext is not None and ext.ok:
            row["criteria"] = dict(ext.criteria or {})
        if e.id not in in_sample:
            row.update(status="skipped", reason=f"not in the --sample of {config.sample}")
        elif e.id in mode_of:
            mode = mode_of[e.id]
            row.update(status="scored", mode_id=mode, mode_size=1 if mode < 0 else sizes[mode],
                       mode_name=None if mode < 0 else space.names.get(mode, ""),
                       mode_summary="(noise: a mode of its own)" if mode < 0 else space.summaries.get(mode, ""))
            if ext is not None and not ext.ok:
                row["reason"] = f"extraction failed ({ext.error}); clustered by its text"
        else:
            row.update(status="failed", reason=(ext.error if ext is not None else None) or "not clustered")
        if shared is not None:
            sm = shared_of.get(e.id)
            info = shared.shares.get(sm, {}) if sm is not None and sm >= 0 else {}
            row.update(shared_mode_id=sm, mode_flag=info.get("flag") if info else
                       ("noise" if sm is not None else None),
                       batch_share=info.get("batch_share"), reference_share=info.get("reference_share"))
        key = e.source_line if e.source_line is not None else pos
        records.append((float(key), row))
    skipped = list(corpus.skipped) if corpus is not None else []
    for s in skipped:
        row = {"id": None, "text": None, "label": None, "source_line": s.line, "status": "skipped", "reason": s.reason, "mode_id": None,
               "mode_size": None, "mode_name": None, "mode_summary": None, "criteria": None}
        if shared is not None:
            row.update(shared_mode_id=None, mode_flag=None, batch_share=None, reference_share=None)
        records.append((float(s.line) if s.line is not None else float("inf"), row))
    records.sort(key=lambda kv: kv[0])  # stable: equal keys keep input order
    rows = [r for _, r in records]
    for k, r in enumerate(rows):
        r["row"] = k
    columns = COLUMNS + (REFERENCE_COLUMNS if shared is not None else [])
    frame = pd.DataFrame(rows, columns=columns)
    for col in ("source_line", "mode_id", "mode_size", *(["shared_mode_id"] if shared is not None else [])):
        frame[col] = frame[col].astype("Int64")
    return frame


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise InputError(f"cannot tell the assignments format from {path.name!r}: use .parquet, .jsonl or .csv")


def check_assignments_path(path: str | Path) -> None:
    """Raise InputError (exit 2) for a name whose extension is not .parquet, .jsonl or .csv."""
    _format_of(Path(path))


def write_assignments(frame: Any, path: str | Path) -> Path:
    """Write the assignments as Parquet, JSONL or CSV, by the file's extension (criteria as JSON text
    in Parquet and CSV, a nested object in JSONL)."""
    path = Path(path)
    fmt = _format_of(path)
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as out:
            for rec in frame.to_dict(orient="records"):
                clean = {k: _plain(v) for k, v in rec.items()}
                out.write(json.dumps(clean, ensure_ascii=False) + "\n")
        return path
    flat = frame.copy()
    flat["criteria"] = [json.dumps(c, ensure_ascii=False, sort_keys=True) if isinstance(c, dict) else None
                        for c in flat["criteria"]]
    if fmt == "parquet":
        flat.to_parquet(path, index=False)
    else:
        flat.to_csv(path, index=False)
    return path


def _plain(value: Any) -> Any:
    """JSON-safe scalars: pandas NA / numpy numbers to None / Python numbers."""
    import pandas as pd

    if isinstance(value, dict):
        return value
    if value is None or (not isinstance(value, (list, str)) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def status_counts(frame: Any) -> dict[str, int]:
    return {k: int(v) for k, v in frame["status"].value_counts().sort_index().items()}
