"""Compare several batches (e.g. generators) at the same sample size in one shared clustering.

Why one clustering: cluster ids from separate runs mean nothing to each other, and each run's
clustering adapts to its own data. Clustering the union once puts every batch in the same mode
space, so "batch A has 4 modes where B has 11" and "cluster 3 is 40% of A but 5% of the rest" are
statements about the same modes. Why the same sample size: the raw score (modes / samples) falls
with size, so batches are subsampled (seeded) to a common n, the smallest batch's by default.

Scores from a comparison are comparable with each other, not with standalone `score` runs: the
shared clustering of the union is not the clustering each batch would get alone (a larger set
may be clustered with UMAP + HDBSCAN where a small batch alone gets the agglomerative fallback).

Significance of score_normalized: a two-sided permutation test per pair. The shared-cluster
labels of both batches are pooled and randomly split into two groups of the original sizes
(`permutations` times, seeded); the p-value is the share of splits whose score difference is at
least the observed one. p-values are Holm-adjusted across all pairs; a pair differs significantly
when the adjusted p < alpha. The test holds the clustering fixed, like the intervals. Whether the
95% intervals overlap is reported alongside, as a quick visual check, not as the test.

Significance of Vendi (when the `vendi` metric is selected): the same kind of test on the pooled
text embeddings, Holm-adjusted across pairs on its own (`vendi_pairwise`). Why beside the modes:
at equal sizes Vendi ordered within-domain batches of known intent counts more often than the mode
count (eval/results/compare_within.md), so a user sees whether the two agree, and is told when not.

Over/under-represented modes (`representation`, `versus_reference`) are `modes.shares`'s flags, each
batch against the others pooled (or the reference): tested, Benjamini-Hochberg across the modes, at
the same level as the pairwise tests (`config.alpha` unless `alpha` is given).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import ClusterdivError, InputError
from clusterdiv.core.progress import ProgressReporter
from clusterdiv.core.records import Example, RepresentationInfo
from clusterdiv.modes.cluster import NOISE
from clusterdiv.modes.modespace import REFERENCE, ModeRow
from clusterdiv.modes.scoring import ModeCount, expected_richness, mode_counts, score_labels
from clusterdiv.modes.shares import ClusterShare, check_alpha, cluster_shares, flag_test_text, shares_section
from clusterdiv.reports.report import ClusterSummary, RunConfig, library_warnings

STAGE_TIMINGS = ("load_s", "extract_s", "embed_s", "cluster_s", "score_s", "metrics_s", "total_s")
SIGNIFICANCE_METHOD = (
    "two-sided permutation test on score_normalized ({permutations} seeded relabelings of the pooled "
    "shared-cluster labels per pair), Holm-adjusted across pairs, alpha {alpha}"
)
PROGRESS_EVERY = 50
VENDI_SIGNIFICANCE_METHOD = (
    "two-sided permutation test on Vendi ({permutations} seeded splits of the pooled text embeddings per pair), "
    "Holm-adjusted across pairs, alpha {alpha}"
)


class BatchResult(ModeCount):
    name: str
    source: str | None = None
    content_hash: str | None = None
    n_available: int = Field(description="examples in the batch before subsampling")
    n_input: int = Field(description="examples sampled for comparison (same for every batch)")
    n_samples: int = Field(description="examples scored (sampled minus failed extractions)")
    n_failed: int
    rank: int = Field(description="1 = most diverse by score_normalized")
    vendi_rank: int | None = Field(default=None, description="1 = most diverse by Vendi (when it was computed)")
    metrics: dict[str, Any] = Field(default_factory=dict)


class PairwiseTest(BaseModel):
    a: str
    b: str
    difference: float = Field(description="a minus b: score_normalized in `pairwise`, Vendi in `vendi_pairwise`")
    p_value: float
    p_adjusted: float
    significant: bool
    cis_overlap: bool | None = Field(default=None, description="whether the 95% intervals overlap (None: no interval)")


class Representation(BaseModel):
    """Shared-cluster shares of one batch against a comparison set (other batches, or the reference)."""

    batch: str
    versus: Literal["others", "reference"]
    over: list[int] = Field(description="clusters at >= 2x the comparison share, or only in this batch")
    under: list[int] = Field(description="clusters significantly under the comparison share (at <= 0.5x) or "
                                         "absent here: flagged missing or under by the test of modes.shares")
    untestable: list[int] = Field(default_factory=list,
                                  description="clusters too small in the comparison set for a lack to be significant")
    clusters: list[ClusterShare]


class ComparisonReport(BaseModel):
    command: Literal["compare"] = "compare"
    sample_size: int
    seed: int
    clustering_method: str
    n_shared_clusters: int
    n_shared_noise: int
    significance_method: str
    alpha: float
    batches: list[BatchResult]
    pairwise: list[PairwiseTest]
    vendi_significance_method: str | None = None
    vendi_pairwise: list[PairwiseTest] = Field(
        default_factory=list, description="pairwise Vendi tests (empty when the vendi metric was not computed)")
    warnings: list[str] = Field(default_factory=list, description="what a reader must know before choosing a batch")
    representation: list[Representation]
    versus_reference: list[Representation] = Field(default_factory=list)
    flag_test: str = Field(default="", description="how the representation flags were decided (modes.shares)")
    modes_from: RepresentationInfo | None = Field(
        default=None, description="the representation the shared modes were built from")
    reference: dict[str, Any] | None = None
    clusters: list[ClusterSummary] = Field(default_factory=list, description="largest shared clusters")
    cluster_counts: dict[str, dict[int, int]] = Field(
        default_factory=dict, description="members per shared cluster, per batch (noise = -1)")
    config: RunConfig
    timings: dict[str, float] = Field(default_factory=dict)

    def batch(self, name: str) -> BatchResult:
        return next(b for b in self.batches if b.name == name)

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)


# ---------------------------------------------------------------- statistics


def _normalized(labels: Sequence[int], reference_size: int) -> float:
    counts = mode_counts(labels)
    return expected_richness(counts, reference_size) / reference_size


def permutation_p_value(a: Sequence[int], b: Sequence[int], *, reference_size: int,
                        permutations: int, seed: int, progress: Callable[[int], None] | None = None) -> float:
    """Two-sided p-value of the score_normalized difference under exchangeable labels.

    `progress` is told every `PROGRESS_EVERY` permutations done (a pair takes seconds at a few hundred rows)."""
    observed = abs(_normalized(a, reference_size) - _normalized(b, reference_size))
    pooled = np.asarray(list(a) + list(b))
    rng = np.random.default_rng(seed)
    extreme = 0
    for done in range(permutations):
        perm = rng.permutation(pooled)
        diff = abs(_normalized(perm[:len(a)].tolist(), reference_size)
                   - _normalized(perm[len(a):].tolist(), reference_size))
        extreme += diff >= observed - 1e-12
        if progress is not None and (done + 1) % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    if progress is not None and permutations % PROGRESS_EVERY:
        progress(permutations % PROGRESS_EVERY)
    return (1 + extreme) / (1 + permutations)


def _tests(pairs: Sequence[tuple[str, str]], differences: Sequence[float], p_values: Sequence[float],
           alpha: float, overlaps: Sequence[bool | None] | None = None) -> list[PairwiseTest]:
    adjusted = holm(p_values)
    overlaps = overlaps or [None] * len(pairs)
    return [PairwiseTest(a=a, b=b, difference=d, p_value=p, p_adjusted=q, significant=q < alpha, cis_overlap=o)
            for (a, b), d, p, q, o in zip(pairs, differences, p_values, adjusted, overlaps, strict=True)]


def disagreements(pairwise: Sequence[PairwiseTest], vendi_pairwise: Sequence[PairwiseTest]) -> list[str]:
    """A warning when Vendi orders a pair the other way from score_normalized (read both, then the modes)."""
    flipped = [f"{p.a} vs {p.b}" for p, v in zip(pairwise, vendi_pairwise, strict=False)
               if p.difference * v.difference < 0]
    if not flipped:
        return []
    return ["Vendi orders " + ", ".join(flipped) + " the other way from score_normalized: the modes and the "
            "embedding spread disagree; read the batches' modes before choosing"]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in input order (monotone, capped at 1)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


# ---------------------------------------------------------------- composition


def _representation(batch: str, versus: Literal["others", "reference"], labels: list[int],
                    groups: list[str], ids: list[str], summaries: dict[int, str],
                    include: set[str], alpha: float, names: dict[int, str] | None = None) -> Representation:
    keep = [i for i, g in enumerate(groups) if g in include]
    rows = cluster_shares([labels[i] for i in keep], [groups[i] == batch for i in keep],
                          [ids[i] for i in keep], summaries=summaries, alpha=alpha, names=names)
    section = shares_section(rows, method="", n_batch=0, n_reference=0, n_clusters=0, alpha=alpha)
    return Representation(batch=batch, versus=versus, clusters=rows, over=section.over_produced,
                          under=section.under_covered, untestable=section.untestable)


def compare(batches: Mapping[str, Any], *, config: Any = None, cache: ModelCache | None = None,
            reference: Any = None, sample: int | None = None, load_options: dict[str, Any] | None = None,
            reference_load_options: dict[str, Any] | None = None, progress: ProgressReporter | None = None,
            permutations: int = 1000, alpha: float | None = None) -> ComparisonReport:
    """Score every batch at one sample size in one shared clustering; see the module docstring.

    `batches` maps a display name to anything `score()` accepts (path, texts, Examples, corpus).
    `sample` (or `config.sample`) is the common size; default the smallest batch's size.
    `alpha` is the level of the pairwise tests; default `config.alpha`, the false discovery rate of the
    modes' flags, so one `--alpha` is the level of every test in the comparison.
    """
    from clusterdiv.io.corpus import as_examples
    from clusterdiv.metrics.registry import compute_set_metrics, select_metrics
    from clusterdiv.metrics.semantic import vendi_permutation_p_value
    from clusterdiv.modes.config import ScoreConfig
    from clusterdiv.modes.embed import embed_texts
    from clusterdiv.modes.modespace import build_mode_space
    from clusterdiv.modes.run import RunContext
    from clusterdiv.tasks.score import sample_examples

    config = ScoreConfig.model_validate((config or ScoreConfig()).model_dump())
    alpha = config.alpha if alpha is None else check_alpha(alpha)
    if len(batches) < 2:
        raise InputError("compare needs at least two batches")
    if permutations < 1:
        raise InputError(f"permutations must be at least 1, got {permutations}")
    if REFERENCE in batches:
        raise InputError(f"'{REFERENCE}' is reserved for --reference; name the batch differently")
    with RunContext(cache=cache, progress=progress) as run:
        with run.stage("load"):
            loaded: dict[str, tuple[list[Example], Any]] = {
                name: as_examples(data, load_options=load_options or {}) for name, data in batches.items()}
            sizes = {name: len(ex) for name, (ex, _) in loaded.items()}
            smallest = min(sizes, key=sizes.__getitem__)
            fixed = config.sample if isinstance(config.sample, int) else None  # auto/all: the smallest batch
            n = sample or fixed or sizes[smallest]
            if n < 2:
                raise InputError(f"batch '{smallest}' has {sizes[smallest]} examples; need at least 2 to compare")
            if n > sizes[smallest]:
                raise InputError(f"--sample {n} exceeds the smallest batch ('{smallest}' has {sizes[smallest]})")
            sampled = {name: sample_examples(ex, n=n, seed=config.seed) for name, (ex, _) in loaded.items()}
            ref_examples: list[Example] = []
            ref_corpus = None
            if reference is not None:
                ref_all, ref_corpus = as_examples(reference, load_options=reference_load_options or {})
                ref_examples = sample_examples(ref_all, n=min(n, len(ref_all)), seed=config.seed)
                if not ref_examples:
                    raise InputError("the reference has no examples")

        # One mode space for every batch (and the reference): the same id may occur in several batches.
        space = build_mode_space({**sampled, **({REFERENCE: ref_examples} if ref_examples else {})}, config, run)
        failed = {name: len(space.failures(name)) for name in space.groups}
        empty = [name for name in sampled if failed[name] == n and config.representation.kind == "criteria"]
        if empty:
            raise ClusterdivError(f"every example of batch '{empty[0]}' failed extraction")
        clustered = space.clustered()
        labels = [int(r.mode) for r in clustered]  # type: ignore[arg-type]
        ids = [batch_key(r) for r in clustered]
        groups = [r.group for r in clustered]
        labels_of = {name: space.labels(name) for name in sampled}

        with run.stage("score"):
            scores = {name: score_labels(labs, reference_size=config.reference_size, n_boot=config.bootstrap,
                                         seed=config.seed) for name, labs in labels_of.items()}
            ranked = sorted(scores, key=lambda k: -scores[k].score_normalized)
            names = list(sampled)
            pairs = list(itertools.combinations(names, 2))
            # The permutation tests are compare's long steps: each has a progress stage, one count per split.
            run.progress.start("modes test", len(pairs) * permutations)
            p_values = [permutation_p_value(labels_of[a], labels_of[b], reference_size=config.reference_size,
                                            permutations=permutations, seed=config.seed,
                                            progress=lambda k: run.progress.advance("modes test", k)) for a, b in pairs]
            run.progress.finish("modes test")
            overlaps = [scores[a].ci95_normalized[0] <= scores[b].ci95_normalized[1]
                        and scores[b].ci95_normalized[0] <= scores[a].ci95_normalized[1] for a, b in pairs]
            pairwise = _tests(pairs, [scores[a].score_normalized - scores[b].score_normalized for a, b in pairs],
                              p_values, alpha, overlaps)

        with run.stage("metrics"):
            embedder = run.embedder(config.embedding_model)
            plan = select_metrics(config.metrics or "all", has_reference=bool(ref_examples))
            metric_values: dict[str, dict[str, Any]] = {name: {} for name in names}
            vectors_of: dict[str, Any] = {}
            if config.metrics != "none":
                ref_vectors = (embed_texts([e.text for e in ref_examples], model=embedder, cache=run.cache)
                               if plan.needs_reference_embeddings else None)
                run.progress.start("metrics", len(names))
                for name in names:
                    texts = [e.text for e in sampled[name]]
                    vectors = embed_texts(texts, model=embedder, cache=run.cache) if plan.needs_embeddings else None
                    vectors_of[name] = vectors
                    values = compute_set_metrics(texts, embeddings=vectors, reference_embeddings=ref_vectors,
                                                 select=set(plan.selected), seed=config.seed,
                                                 bootstrap=config.bootstrap,
                                                 self_bleu_sample=config.self_bleu_sample,
                                                 reference_size=config.reference_size)
                    metric_values[name] = {k: v.model_dump(mode="json") for k, v in values.items()}
                    run.progress.advance("metrics")
                run.progress.finish("metrics")
            vendi_pairwise: list[PairwiseTest] = []
            vendi_ranks: dict[str, int] = {}
            if "vendi" in plan.selected:  # "none" selects nothing
                run.progress.start("vendi test", len(pairs) * permutations)
                tested = [vendi_permutation_p_value(vectors_of[a], vectors_of[b], permutations=permutations,
                                                    seed=config.seed,
                                                    progress=lambda k: run.progress.advance("vendi test", k))
                          for a, b in pairs]
                run.progress.finish("vendi test")
                vendi_pairwise = _tests(pairs, [d for d, _ in tested], [p for _, p in tested], alpha)
                by_vendi = sorted(names, key=lambda k: -metric_values[k]["vendi"]["value"])
                vendi_ranks = {name: by_vendi.index(name) + 1 for name in names}

        summaries_list = space.summaries(per_cluster=3, key=batch_key)
        summaries = {c.cluster_id: c.criteria_summary for c in summaries_list}
        mode_names = {c.cluster_id: c.name for c in summaries_list}
        batch_names = set(names)
        representation = [_representation(name, "others", labels, groups, ids, summaries, batch_names, config.alpha,
                                          mode_names) for name in names]
        versus_reference = [_representation(name, "reference", labels, groups, ids, summaries,
                                            {name, REFERENCE}, config.alpha, mode_names)
                            for name in names] if ref_examples else []
        counts: dict[str, dict[int, int]] = {}
        for lab, g in zip(labels, groups, strict=True):
            counts.setdefault(g, {}).setdefault(lab, 0)
            counts[g][lab] += 1

        results = []
        for name in names:
            s, corpus = scores[name], loaded[name][1]
            results.append(BatchResult(
                name=name, source=corpus.path if corpus is not None else None,
                content_hash=corpus.content_hash if corpus is not None else None,
                n_available=sizes[name], n_input=n, n_samples=s.n_samples, n_failed=failed[name],
                n_clusters=s.n_clusters, n_noise=s.n_noise, n_modes=s.n_modes, score=s.score,
                score_normalized=s.score_normalized, ci95=s.ci95, ci95_normalized=s.ci95_normalized,
                rank=ranked.index(name) + 1, vendi_rank=vendi_ranks.get(name), metrics=metric_values[name],
            ))
        clustering = space.clustering
        timings = run.finish()
        return ComparisonReport(
            sample_size=n, seed=config.seed, clustering_method=clustering.method,
            n_shared_clusters=clustering.n_clusters, n_shared_noise=clustering.n_noise,
            significance_method=SIGNIFICANCE_METHOD.format(permutations=permutations, alpha=alpha),
            alpha=alpha, batches=results, pairwise=pairwise,
            vendi_significance_method=(VENDI_SIGNIFICANCE_METHOD.format(permutations=permutations, alpha=alpha)
                                       if vendi_pairwise else None),
            vendi_pairwise=vendi_pairwise,
            warnings=[*disagreements(pairwise, vendi_pairwise),  # and what a metric's library said, per batch
                      *(f"{name}: {w}" for name in names for w in library_warnings(metric_values[name]))],
            representation=representation, flag_test=flag_test_text(config.alpha),
            versus_reference=versus_reference, modes_from=space.representation,
            reference=({"source": ref_corpus.path if ref_corpus is not None else None,
                        "n_samples": len(ref_examples), "n_failed": failed.get(REFERENCE, 0)}
                       if ref_examples else None),
            clusters=summaries_list[:config.top_clusters], cluster_counts=counts,
            config=run.run_config(config, space, sample=n),
            timings={k: getattr(timings, k) for k in STAGE_TIMINGS},
        )


def batch_key(row: ModeRow) -> str:
    """A row's id in the comparison report: `<batch>:<id>` (the same id may be in several batches)."""
    return f"{row.group}:{row.example.id}"


__all__ = ["NOISE", "REFERENCE", "BatchResult", "ComparisonReport", "PairwiseTest", "Representation", "compare",
           "disagreements", "holm", "permutation_p_value"]
