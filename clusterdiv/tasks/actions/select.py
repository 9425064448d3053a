"""A diverse subset under a budget: cover the modes, cap each mode, follow the real data, keep the mix.

The rule, in order:

1. **Modes.** The batch is clustered as `score` clusters it (raw text by default, no LLM call); with
   a reference (real data) batch and reference are clustered together, so modes are shared.
2. **How many per mode.** Seats are apportioned to modes by the highest-averages (D'Hondt) rule:
   the next example goes to the mode with the highest `weight / (taken + 1)`. Without a reference
   every mode (each noise point counts as a mode of its own) has weight 1, so the subset covers as
   many modes as the budget allows and evens out their counts (a collapsed mode gets no more than
   any other). With a reference a mode's weight is its share of the reference, so the subset's mode
   shares follow the real data's; modes the reference lacks (`batch_only`, batch noise) only fill
   seats once every real mode is exhausted. `max_share` caps any one mode at that share of the budget.
   Ties go to a seeded order of the modes, so the subset is a function of the data and the seed.
   With `cover_modes` every mode first gets one seat (largest weight first) while the budget lasts, and
   the rule above apportions the rest: weighting by the real shares alone leaves small modes seatless,
   so a subset could cover fewer modes than the batch it came from (the explorer's download did:
   7 -> 5 modes); covering first, a subset covers every mode of the batch whenever the budget allows.
3. **Which examples in a mode.** Farthest-point order in the embedding space: the member nearest the
   mode's centroid first, then each next one the member least similar to those taken (near
   duplicates come last). With `real_share` (and a `source_field` telling real from synthetic rows),
   real examples are taken first in each mode until the subset holds `floor(real_share * budget)`
   real ones: the mix budget is a cap, never exceeded; afterwards only synthetic examples are taken.

The subset never exceeds the budget; it is smaller only when the caps leave nothing to take. Under
an LLM representation an example whose extraction failed has no mode and is never chosen. The
result reports before/after figures: the normalised diversity score (each set clustered on its own),
mode coverage, and with a reference the share of real data in modes the set lacks and the total
variation distance between the set's and the reference's mode shares.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError
from clusterdiv.core.progress import ProgressReporter
from clusterdiv.core.records import Example
from clusterdiv.reports.coverage import coverage_line
from clusterdiv.tasks.actions._space import ModeArrays, build_space, spread_order

DEFAULT_REAL_VALUES = ("real", "human", "gold", "original")


class SetFigures(BaseModel):
    n: int
    real: int | None = Field(default=None, description="real examples (when a source field tells)")
    n_modes: int = Field(description="distinct modes of the batch clustering the set touches")
    score_normalized: float = Field(description="normalised diversity score, the set clustered on its own")
    score: float
    reference_modes_missing: int | None = None
    reference_share_missing: float | None = Field(
        default=None, description="share of the reference in modes the set has no example of: counted, not "
                                  "tested, so a smaller set is not rewarded for the test's lower power; the "
                                  "tested flags of the batch are in `coverage` and `per_mode`")
    share_distance: float | None = Field(
        default=None, description="total variation distance between the set's and the reference's mode shares")


class SelectResult(BaseModel):
    """What `select_subset` chose, and the figures before and after."""

    model_config = {"arbitrary_types_allowed": True}

    budget: int
    n_input: int
    n_selected: int
    seed: int
    real_share: float | None
    real_cap: int | None
    max_share: float | None
    mode_cap: int | None
    weighting: str
    n_modes: int
    method: str
    before: SetFigures
    after: SetFigures
    selected_ids: list[str]
    per_mode: list[dict[str, Any]] = Field(
        description="modes by weight: available, selected, weight and, with a reference, the batch's flag")
    coverage: str | None = Field(default=None, description="with a reference: the report's coverage line of the "
                                                           "batch (the tested flags of modes.shares)")
    examples: list[Example] = Field(default_factory=list, exclude=True, repr=False)
    source: str | None = None
    input_format: str | None = None
    text_field: str | None = None


def is_real_flags(examples: Sequence[Example], source_field: str, real_values: Sequence[str]) -> list[bool]:
    real = {v.strip().lower() for v in real_values}
    out = []
    for e in examples:
        if source_field not in e.meta:
            raise InputError(f"example {e.id!r} has no {source_field!r} field; --real-share needs every example "
                             f"to say where it came from (pick the field with --source-field)")
        out.append(str(e.meta[source_field]).strip().lower() in real)
    return out


def apportion(mode_of: Sequence[int], vectors: np.ndarray, *, budget: int, weights: dict[int, float] | None,
              is_real: Sequence[bool] | None, real_cap: int | None, mode_cap: int | None, seed: int,
              cover_modes: bool = False) -> list[int]:
    """Indices (into `mode_of`) of the chosen examples, in the order they were chosen.

    `mode_of` gives each candidate's mode key (noise points get keys of their own); `weights` the
    target weight per mode key (None = every mode 1; missing keys weigh 0 and fill last);
    `cover_modes` seats one example of every mode first (see the module docstring).
    """
    members: dict[int, list[int]] = {}
    for i, m in enumerate(mode_of):
        members.setdefault(m, []).append(i)
    modes = sorted(members)
    rank = {m: r for r, m in enumerate(random.Random(seed).sample(modes, len(modes)))}
    limit = budget if mode_cap is None else min(budget, mode_cap)
    queues: dict[int, list[list[int]]] = {}
    for m in modes:
        idx = members[m]
        groups = ([[i for i in idx if is_real[i]], [i for i in idx if not is_real[i]]] if is_real is not None
                  else [idx])
        queues[m] = []
        for g in groups:
            order = spread_order(vectors[g], limit=limit) if g else []
            queues[m].append([g[k] for k in order][::-1])  # pop() from the end
    taken = dict.fromkeys(modes, 0)
    real_taken = 0
    chosen: list[int] = []

    def weight(m: int) -> float:
        return 1.0 if weights is None else float(weights.get(m, 0.0))

    def push(heap: list[tuple[float, int, int]], m: int) -> None:
        w = weight(m)
        prio = (taken[m] + 1) / w if w > 0 else float(taken[m] + 1)
        heapq.heappush(heap, (prio, rank[m], m))

    def take(m: int) -> bool | None:
        """Seat the next example of mode m; None when it may give none, else whether it may give more."""
        nonlocal real_taken
        q = queues[m]
        pick = None
        if is_real is None:
            if q[0]:
                pick = q[0].pop()
        elif q[0] and (real_cap is None or real_taken < real_cap):
            pick = q[0].pop()
            real_taken += 1
        elif q[1]:
            pick = q[1].pop()
        if pick is None:
            return None
        chosen.append(pick)
        taken[m] += 1
        more = bool(q[0]) if is_real is None else bool((q[0] and (real_cap is None or real_taken < real_cap)) or q[1])
        return more and (mode_cap is None or taken[m] < mode_cap)

    tiers: list[list[tuple[float, int, int]]] = [[], []]
    open_modes = modes
    if cover_modes:
        open_modes = []
        for m in sorted(modes, key=lambda m: (-weight(m), rank[m])):
            if len(chosen) >= budget:
                open_modes.append(m)
            elif take(m):
                open_modes.append(m)
    for m in open_modes:
        push(tiers[0 if weight(m) > 0 else 1], m)
    for heap in tiers:
        while heap and len(chosen) < budget:
            _, _, m = heapq.heappop(heap)
            more = take(m)
            if more:
                push(heap, m)
    return chosen


def _figures(space: ModeArrays, batch_rows: np.ndarray, *, batch_labels: np.ndarray, is_real: list[bool] | None,
             config: Any, selected: np.ndarray) -> SetFigures:
    """Figures of one set (`selected` = positions into the batch rows of the space)."""
    from clusterdiv.modes.cluster import cluster_vectors
    from clusterdiv.modes.scoring import score_labels

    X = space.vectors[batch_rows[selected]]
    own = cluster_vectors(X, params=config.cluster_params(), seed=config.seed)
    sc = score_labels(own.labels, reference_size=config.reference_size, n_boot=0, seed=config.seed)
    labels = batch_labels[selected]
    n_modes = len({int(v) for v in labels if v >= 0}) + int((labels < 0).sum())
    out = SetFigures(n=len(selected), n_modes=n_modes, score=sc.score, score_normalized=sc.score_normalized,
                     real=None if is_real is None else int(sum(is_real[i] for i in selected)))
    if space.shares:
        ref_rows = ~space.is_batch
        ref_labels = space.labels[ref_rows]
        shared_labels = space.labels[batch_rows[selected]]
        ref_counts = {int(m): int((ref_labels == m).sum()) for m in set(ref_labels.tolist()) if m >= 0}
        n_ref = int(ref_rows.sum())
        have = {int(m) for m in shared_labels.tolist() if m >= 0}
        missing = [m for m in ref_counts if m not in have]
        out.reference_modes_missing = len(missing)
        out.reference_share_missing = sum(ref_counts[m] for m in missing) / n_ref if n_ref else None
        n_sel = len(selected)
        set_counts: dict[int, int] = {}
        for m in shared_labels.tolist():
            set_counts[m] = set_counts.get(m, 0) + 1
        keys = set(ref_counts) | {m for m in set_counts if m >= 0}
        tv = sum(abs(set_counts.get(m, 0) / n_sel - ref_counts.get(m, 0) / n_ref) for m in keys)
        tv += set_counts.get(-1, 0) / n_sel + int((ref_labels < 0).sum()) / n_ref  # noise: never shared
        out.share_distance = 0.5 * tv
    return out


def select_subset(data: Any, *, budget: int, reference: Any = None, real_share: float | None = None,
                  source_field: str = "source", real_values: Sequence[str] = DEFAULT_REAL_VALUES,
                  max_share: float | None = None, cover_modes: bool = False, config: Any = None,
                  cache: ModelCache | None = None,
                  progress: ProgressReporter | None = None,
                  load_options: dict[str, Any] | None = None, reference_load_options: dict[str, Any] | None = None,
                  **overrides: Any) -> SelectResult:
    """Choose at most `budget` examples of `data` by the rule in the module docstring."""
    from clusterdiv.io.corpus import as_examples
    from clusterdiv.modes.config import ScoreConfig
    from clusterdiv.modes.run import RunContext

    if budget < 1:
        raise InputError(f"the budget must be at least 1, got {budget}")
    if real_share is not None and not 0.0 <= real_share <= 1.0:
        raise InputError(f"--real-share must be within 0..1, got {real_share}")
    if max_share is not None and not 0.0 < max_share <= 1.0:
        raise InputError(f"--max-share must be within (0, 1], got {max_share}")
    config = ScoreConfig.model_validate({**(config or ScoreConfig()).model_dump(), **overrides})
    with RunContext(cache=cache) as run:
        examples, corpus = as_examples(data, load_options=load_options or {})
        if not examples:
            raise InputError("the batch is empty: nothing to select")
        ref_examples = None
        if reference is not None:
            ref_examples, _ = as_examples(reference, load_options=reference_load_options or {})
            if not ref_examples:
                raise InputError("the reference is empty")
        is_real = is_real_flags(examples, source_field, real_values) if real_share is not None else None
        space = build_space(examples, ref_examples, config=config, cache=run.cache, progress=progress)

    where = space.batch_index()
    clustered = [k for k, e in enumerate(examples) if e.id in where]  # failed extractions cannot be placed
    batch_rows = np.array([where[examples[k].id] for k in clustered], dtype=np.int64)
    labels = space.labels[batch_rows]
    mode_of = [int(lab) if lab >= 0 else -(j + 2) for j, lab in enumerate(labels.tolist())]
    weights = None
    weighting = "every batch mode weighs 1 (each noise point is a mode)"
    if space.shares:
        weights = {m: float(r["reference_share"]) for m, r in space.shares.items() if r["reference_share"] > 0}
        weighting = "each shared mode weighs its share of the reference; modes the reference lacks fill last"
    sub_real = [is_real[k] for k in clustered] if is_real is not None else None
    real_cap = math.floor(real_share * budget + 1e-9) if real_share is not None else None
    mode_cap = max(1, math.floor(max_share * budget + 1e-9)) if max_share is not None else None
    picks = apportion(mode_of, space.vectors[batch_rows], budget=budget, weights=weights, is_real=sub_real,
                      real_cap=real_cap, mode_cap=mode_cap, seed=config.seed, cover_modes=cover_modes)
    picks_sorted = np.array(sorted(picks), dtype=np.int64)  # input order in the output
    batch_labels = np.array([m if m >= 0 else -1 for m in mode_of], dtype=np.int64)
    before = _figures(space, batch_rows, batch_labels=batch_labels, is_real=sub_real, config=config,
                      selected=np.arange(len(batch_rows)))
    after = _figures(space, batch_rows, batch_labels=batch_labels, is_real=sub_real, config=config,
                     selected=picks_sorted)
    per: dict[int, dict[str, Any]] = {}
    for m in mode_of:
        key = m if m >= 0 else -1
        row = per.setdefault(key, {"mode_id": key, "available": 0, "selected": 0,
                                   "weight": (weights or {}).get(key, 0.0) if weights is not None else None,
                                   "summary": "(noise points)" if key < 0 else space.summaries.get(key, "")})
        row["available"] += 1
        if space.shares:
            row["flag"] = space.shares[key]["flag"] if key in space.shares else None
    for j in picks:
        per[mode_of[j] if mode_of[j] >= 0 else -1]["selected"] += 1
    per_mode = sorted(per.values(), key=lambda r: (-(r["weight"] or 0.0), -r["available"], r["mode_id"]))
    chosen = [examples[clustered[j]] for j in picks_sorted.tolist()]
    return SelectResult(
        budget=budget, n_input=len(examples), n_selected=len(chosen), seed=config.seed, real_share=real_share,
        real_cap=real_cap, max_share=max_share, mode_cap=mode_cap, weighting=weighting,
        n_modes=len(set(mode_of)), method=space.method, before=before, after=after,
        selected_ids=[e.id for e in chosen], per_mode=per_mode, examples=chosen,
        coverage=coverage_line(space.section),
        source=corpus.path if corpus is not None else None,
        input_format=corpus.format if corpus is not None else None,
        text_field=corpus.text_field if corpus is not None else None,
    )
