"""The explorer's downloads (issue 17): a diverse subset of the batch, and real seeds for lacking modes.

Both are computed when the page is built, by the library functions the `select` and `seeds`
commands use (`actions.select_subset`, `actions.tail_seeds`), on the explore run's own examples
(after `--sample`), reference and configuration, over the run's cache: every extraction and
embedding they need was made by the explore run, so they make no LLM call of their own, and their
modes are the explorer's modes (the same stages on the same data).

The files travel inside the page's data as text; the page turns each into a Blob link, so the page
stays one static file that works offline and under the service's CSP (no request, no inline handler).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.records import Example

SEEDS_PER_MODE = 5


class Download(BaseModel):
    """One file the page offers."""

    filename: str
    media_type: str = "application/x-ndjson"
    rows: int  # lines of the file
    content: str
    summary: str  # one line on the page beside the link


class Downloads(BaseModel):
    subset: Download
    seeds: Download | None = None  # only with a reference


def default_budget(n_batch: int) -> int:
    """Half the batch (at least one example): a subset that is a real choice, not the whole batch."""
    return max(1, n_batch // 2)


def _jsonl(rows: Sequence[Any]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def build_downloads(examples: Sequence[Example], reference: Sequence[Example] | None, *, config: Any,
                    cache: ModelCache, stem: str, names: dict[int, str], budget: int | None = None,
                    text_field: str | None = None, id_field: str | None = None,
                    per_mode: int = SEEDS_PER_MODE) -> Downloads:
    """The subset at `budget` (default: half the batch) and, with a reference, the tail seeds.

    `examples` are the batch as explored (already sampled); `names` the explorer's cluster names,
    added to each seed line as `name`. The subset is JSONL records as `select` writes them for a
    JSONL input (`actions.write.record_of`: the original fields, or plain strings).
    """
    from clusterdiv.tasks.actions import select_subset, tail_seeds
    from clusterdiv.tasks.actions.write import record_of

    budget = default_budget(len(examples)) if budget is None else budget
    overrides = {"sample": "all"}  # the examples are already the explored sample
    chosen = select_subset(list(examples), budget=budget, reference=list(reference) if reference else None,
                           config=config, cache=cache, cover_modes=True, **overrides)
    after, before = chosen.after, chosen.before
    subset = Download(
        filename=f"{stem}.subset.jsonl", rows=chosen.n_selected,
        content=_jsonl([record_of(e, text_field=text_field, id_field=id_field) for e in chosen.examples]),
        summary=(f"a diverse subset: {chosen.n_selected} of {chosen.n_input} examples (budget {budget}); "
                 f"modes covered {before.n_modes} -> {after.n_modes}, normalised diversity "
                 f"{before.score_normalized:.3f} -> {after.score_normalized:.3f}"
                 # every mode gets a seat first (cover_modes): only a budget below the mode count drops one
                 + (f" (the budget of {budget} is below the batch's {before.n_modes} modes)"
                    if after.n_modes < before.n_modes else "")))
    seeds = None
    if reference:
        found = tail_seeds(list(examples), reference=list(reference), per_mode=per_mode, config=config,
                           cache=cache, **overrides)
        lines = [{"mode_id": m.mode_id, **m.model_dump(mode="json"), "name": names.get(m.mode_id, m.name)}
                 for m in found.modes]
        n_seeds = sum(len(m.seeds) for m in found.modes)
        seeds = Download(
            filename=f"{stem}.seeds.jsonl", rows=len(lines), content=_jsonl(lines),
            summary=(f"real seeds for the {found.n_lacking} modes the batch lacks or under-covers: {n_seeds} "
                     f"real examples, up to {per_mode} a mode"
                     + (f"; {len(found.excluded_ids)} reference rows never used (possibly synthetic)"
                        if found.excluded_ids else "")))
    return Downloads(subset=subset, seeds=seeds)
