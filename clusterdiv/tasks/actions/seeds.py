"""Real tail seeds for the next round: real examples of every mode the batch lacks or under-covers.

Generating the next round from the last round's output compounds the generator's biases; seeding it
from real examples of the modes it lost recovers them. For each shared mode (batch and reference
clustered together, as in the report's `cluster_shares`) flagged `missing` or `under` by the test of
`modes.shares` (significantly fewer batch examples than the real share predicts, Benjamini-Hochberg
across the modes at `config.alpha`; modes too small to test are counted, never seeded), the result
gives the mode's shares, its summary and most common criteria (LLM representations), and `per_mode`
real examples of it in farthest-point order (the most central first, then the most different), as
one JSONL line per mode, ready to fill a generation prompt.

No synthetic example is ever emitted as a seed. A reference row is excluded when
* its `source_field` says it is not real (any value outside `real_values`), or it declares
  `seed_source` synthetic, or
* the recursion guard (`check_lineage`, the `lineage` command) flags it against the batch and any
  earlier synthetic batches given: an exact or near duplicate or a paraphrase of a synthetic
  example, or a declared synthetic parent. A real example that a synthetic one paraphrased is
  excluded too: the guard cannot tell which came first, and a seed must be beyond doubt.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError
from clusterdiv.core.progress import ProgressReporter
from clusterdiv.core.records import Example
from clusterdiv.modes.shares import LACKING
from clusterdiv.reports.coverage import coverage_line
from clusterdiv.reports.report import ValueCount
from clusterdiv.reports.sections import LabelCoverage
from clusterdiv.tasks.actions._space import REF_PREFIX, ModeArrays, build_space, spread_order, top_criteria
from clusterdiv.tasks.actions.write import open_output

DEFAULT_REAL_VALUES = ("real", "human", "gold", "original")
SYNTHETIC_SEED_VALUES = ("synthetic", "generated", "model", "llm")


class Seed(BaseModel):
    id: str
    text: str
    label: str | None = Field(default=None, exclude_if=lambda v: v is None)  # with --label-field


class ExcludedRow(BaseModel):
    """A real example of the mode never used as a seed, and why (see the module docstring)."""

    id: str
    reason: str


class SeedMode(BaseModel):
    mode_id: int
    flag: str
    reference_share: float
    batch_share: float
    reference_count: int
    batch_count: int
    name: str = ""  # the mode's extractive name (modes.names): the name the report and the explorer use
    summary: str
    criteria: dict[str, list[str]] = Field(default_factory=dict)
    seeds: list[Seed]
    note: str = ""
    # With --label-field: the gold labels of the mode's real examples and the majority label's share
    # (`modes.stages.label_mix`), so a prompt can say which intent the mode is; absent without labels.
    labels: list[ValueCount] | None = Field(default=None, exclude_if=lambda v: v is None)
    label_purity: float | None = Field(default=None, exclude_if=lambda v: v is None)
    excluded: list[ExcludedRow] = Field(default_factory=list,
                                        description="the mode's real examples left out as possibly synthetic")


class SeedLabel(BaseModel):
    """Seeds for one reference label the batch lacks (coverage by label, `modes.labels`)."""

    label: str
    flag: str
    reference_count: int
    batch_count: int
    expected: float
    q_value: float | None = None
    seeds: list[Seed]
    note: str = ""


class SeedsResult(BaseModel):
    n_batch: int
    n_reference: int
    per_mode: int
    n_modes: int = Field(description="real modes: modes of the batch + reference clustering with a reference "
                                     "example (batch-only modes are none), as `score`'s coverage line counts them")
    n_covered: int = Field(default=0, description="real modes neither lacking nor too small to test")
    n_lacking: int = Field(description="real modes the batch lacks (missing) or under-covers (under); with "
                                       "missing_only the seeded `modes` are the missing ones among them")
    n_missing: int
    reference_share_lacking: float = Field(description="share of the reference in those modes")
    alpha: float = Field(default=0.05, description="false discovery rate of the flags' test (modes.shares)")
    n_untestable: int = Field(default=0, description="real modes too small for their absence to be significant")
    reference_share_untestable: float = Field(default=0.0, description="share of the reference in those modes")
    excluded: dict[str, int] = Field(description="reference rows never used as seeds, by reason")
    excluded_ids: list[str]
    excluded_rows: list[ExcludedRow] = Field(default_factory=list,
                                             description="every reference row never used as a seed, and why")
    modes: list[SeedMode]
    coverage: str | None = Field(default=None, description="the report's coverage line of the same mode space "
                                                           "(reports.coverage), word for word")

    by_label: LabelCoverage | None = Field(default=None, description="coverage by the reference's labels "
                                                                     "(--reference-label-field; modes.labels)")
    label_seeds: list[SeedLabel] = Field(default_factory=list, description="seeds per lacking label")

    def jsonl(self) -> str:
        """One line per lacking label when the reference has labels (the team's own unit, at its grain:
        eval/results/seeds_within.md), else one per lacking mode."""
        lines = self.label_seeds if self.by_label is not None else self.modes
        return "".join(json.dumps(m.model_dump(mode="json"), ensure_ascii=False) + "\n" for m in lines)


def _declared_synthetic(e: Example, source_field: str, real: set[str]) -> str | None:
    if source_field in e.meta and str(e.meta[source_field]).strip().lower() not in real:
        return f"{source_field}={e.meta[source_field]}"
    seed_source = e.meta.get("seed_source")
    if isinstance(seed_source, str) and seed_source.strip().lower() in SYNTHETIC_SEED_VALUES:
        return f"seed_source={seed_source}"
    return None


def tail_seeds(batch: Any, *, reference: Any, per_mode: int = 5, against: Sequence[Any] = (),
               source_field: str = "source", real_values: Sequence[str] = DEFAULT_REAL_VALUES,
               include_under: bool = True, config: Any = None, cache: ModelCache | None = None,
               progress: ProgressReporter | None = None,
               load_options: dict[str, Any] | None = None, reference_load_options: dict[str, Any] | None = None,
               reference_label_field: str | None = None, **overrides: Any) -> SeedsResult:
    """Seeds for every mode the batch lacks (and, with `include_under`, under-covers); see the module.
    With `reference_label_field`, the reference's labels too: seeds for every label it lacks (`modes.labels`)."""
    from clusterdiv.io.corpus import as_examples
    from clusterdiv.modes.config import ScoreConfig
    from clusterdiv.modes.run import RunContext
    from clusterdiv.tasks.anchoring.lineage import check_lineage

    if per_mode < 1:
        raise InputError(f"--per-mode must be at least 1, got {per_mode}")
    if reference is None:
        raise InputError("seeds come from real data: give --reference")
    config = ScoreConfig.model_validate({**(config or ScoreConfig()).model_dump(), **overrides})
    with RunContext(cache=cache) as run:
        examples, _ = as_examples(batch, load_options=load_options or {})
        ref, _ = as_examples(reference, load_options={**(reference_load_options or {}), **(
            {"label_field": reference_label_field} if reference_label_field else {})})
        if not examples:
            raise InputError("the batch is empty")
        if not ref:
            raise InputError("the reference is empty")
        earlier = [as_examples(a, load_options=load_options or {})[0] for a in against]
        real = {v.strip().lower() for v in real_values}
        excluded: dict[str, str] = {}
        for e in ref:
            why = _declared_synthetic(e, source_field, real)
            if why is not None:
                excluded[e.id] = why
        candidates = [e for e in ref if e.id not in excluded]
        if candidates:
            # a mix's real rows are not synthetic: only the rest of the batch is guarded against
            batch_synthetic = [e for e in examples if not (
                source_field in e.meta and str(e.meta[source_field]).strip().lower() in real)]
            synthetic = [a for a in (batch_synthetic, *earlier) if a]
        else:
            synthetic = []
        if candidates and synthetic:
            guard = check_lineage(candidates, against=synthetic, real=None,
                                  embedding_model=config.embedding_model, cache=run.cache, max_listed=0)
            assert guard.lineage is not None
            for i in guard.lineage.flagged_ids:
                excluded.setdefault(i, "recursion guard: copy or paraphrase of synthetic data")
        space = build_space(examples, ref, config=config, cache=run.cache, progress=progress)

    flags = LACKING if include_under else ("missing",)
    lacking = [r for r in space.shares.values() if r["flag"] in flags]
    assert space.section is not None  # built with a reference
    counts = space.section.counts()  # the coverage line's counts, whatever `include_under` seeds
    text_of = {e.id: e.text for e in ref}
    modes = seed_modes(space, lacking, excluded=excluded, text_of=text_of, per_mode=per_mode,
                       label_of={e.id: e.label for e in ref})
    by_label, label_seeds = None, []
    if reference_label_field is not None:
        by_label, label_seeds = _by_label(space, ref, label_field=reference_label_field, excluded=excluded,
                                          text_of=text_of, per_mode=per_mode, flags=flags, config=config)
    reasons: dict[str, int] = {}
    for why in excluded.values():
        key = why.split("=")[0] + "=..." if "=" in why else why
        reasons[key] = reasons.get(key, 0) + 1
    return SeedsResult(
        n_batch=len(examples), n_reference=len(ref), per_mode=per_mode, n_modes=counts.real,
        n_covered=counts.covered, n_lacking=counts.lacking, n_missing=counts.missing,
        reference_share_lacking=counts.lacking_share, alpha=config.alpha,
        n_untestable=counts.untestable, reference_share_untestable=counts.untestable_share,
        excluded=reasons, excluded_rows=[ExcludedRow(id=i, reason=why) for i, why in excluded.items()],
        excluded_ids=sorted(excluded), modes=modes, coverage=coverage_line(space.section), by_label=by_label,
        label_seeds=label_seeds)


def _by_label(space: ModeArrays, ref: Sequence[Example], *, label_field: str, excluded: Collection[str],
              text_of: dict[str, str], per_mode: int, flags: Sequence[str],
              config: Any) -> tuple[LabelCoverage, list[SeedLabel]]:
    """Coverage by the reference's labels on the space's vectors, and seeds for each lacking label."""
    from clusterdiv.modes.labels import fit_labels, label_coverage

    label_of = {e.id: e.label for e in ref}
    if any(v is None for v in label_of.values()):
        raise InputError(f"coverage by label needs every reference row labelled in {label_field!r}",
                         option="reference-label-field")
    rows = [k for k in range(len(space.ids)) if not space.is_batch[k]]
    rids = [space.ids[k][len(REF_PREFIX):] for k in rows]
    labels = [str(label_of[i]) for i in rids]
    fit = fit_labels(space.vectors[space.is_batch], space.vectors[rows], labels, label_field=label_field,
                     seed=config.seed)
    batch_ids = [i for k, i in enumerate(space.ids) if space.is_batch[k]]
    section = label_coverage(fit, batch_ids=batch_ids, reference_ids=rids, label_field=label_field,
                             alpha=config.alpha)
    return section, seed_labels(section, vectors=space.vectors[rows], ids=rids, labels=labels,
                                excluded=set(excluded), text_of=text_of, per_mode=per_mode, flags=flags)


def seed_modes(space: ModeArrays, lacking: Sequence[dict[str, Any]], *, excluded: Collection[str],
               text_of: dict[str, str], per_mode: int,
               label_of: Mapping[str, str | None] | None = None) -> list[SeedMode]:
    """One `SeedMode` per lacking mode (`ClusterShare` dumps), most lacking first: `per_mode` real
    examples of it in farthest-point order, none of `excluded` (ids, or id -> reason: each mode lists
    its own). `tail_seeds` is this after the flags and the recursion guard; eval/seeds_within_eval.py
    calls it to compare flag rules on the same space. `label_of` (reference id -> gold label) adds
    the mode's labels."""
    from clusterdiv.modes.stages import label_mix

    why = excluded if isinstance(excluded, Mapping) else dict.fromkeys(excluded, "excluded")
    gold = label_of if label_of and any(v is not None for v in label_of.values()) else None
    order_of = sorted(lacking, key=lambda r: (-(r["reference_share"] - r["batch_share"]), r["cluster_id"]))
    by_mode: dict[int, list[int]] = {}
    for k, lab in enumerate(space.labels.tolist()):
        if not space.is_batch[k] and lab >= 0:  # a batch id may itself start with `ref:`
            by_mode.setdefault(lab, []).append(k)
    modes = []
    for r in order_of:
        m = r["cluster_id"]
        real_ids = [space.ids[k][len(REF_PREFIX):] for k in by_mode.get(m, [])]
        rows = [k for k, i in zip(by_mode.get(m, []), real_ids, strict=True) if i not in why]
        order = spread_order(space.vectors[rows], limit=per_mode) if rows else []
        seeds = [Seed(id=(i := space.ids[rows[j]][len(REF_PREFIX):]), text=text_of[i],
                      label=gold.get(i) if gold is not None else None) for j in order]
        members = [space.extractions[space.ids[k]] for k in by_mode.get(m, []) if space.ids[k] in space.extractions]
        note = "" if seeds else "every real example of this mode was excluded as possibly synthetic"
        modes.append(SeedMode(
            mode_id=m, flag=r["flag"], reference_share=r["reference_share"], batch_share=r["batch_share"],
            reference_count=r["reference_count"], batch_count=r["batch_count"], summary=r["criteria_summary"],
            name=r.get("name", ""), criteria=top_criteria(members), seeds=seeds, note=note,
            excluded=[ExcludedRow(id=i, reason=why[i]) for i in real_ids if i in why],
            **(label_mix([gold.get(i) for i in real_ids]) if gold is not None else {})))
    return modes


def write_seeds(result: SeedsResult, path: str | Path | None) -> str:
    text = result.jsonl()
    if path is not None:
        with open_output(Path(path)) as out:
            out.write(text)
    return text


def seed_labels(section: Any, *, vectors: np.ndarray, ids: Sequence[str], labels: Sequence[str],
                excluded: set[str], text_of: dict[str, str], per_mode: int,
                flags: Sequence[str] = LACKING) -> list[SeedLabel]:
    """One `SeedLabel` per label of `section` (a `LabelCoverage`) flagged in `flags`, most lacking first:
    `per_mode` real examples carrying the label (their own label, not the classifier's), in farthest-point
    order, none of `excluded`. `vectors`, `ids` and `labels` are the reference's rows, aligned."""
    out = []
    for row in section.labels:
        if row.flag not in flags:
            continue
        rows = [k for k, (i, lab) in enumerate(zip(ids, labels, strict=True)) if lab == row.label and i not in excluded]
        order = spread_order(vectors[rows], limit=per_mode) if rows else []
        seeds = [Seed(id=ids[rows[j]], text=text_of[ids[rows[j]]]) for j in order]
        out.append(SeedLabel(label=row.label, flag=row.flag, reference_count=row.reference_count,
                             batch_count=row.batch_count, expected=row.expected, q_value=row.q_value, seeds=seeds,
                             note="" if seeds else "every real example of this label was excluded as possibly synthetic"))
    return out
