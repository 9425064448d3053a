"""The scoring pipeline, top to bottom: load -> extract -> embed -> cluster -> score -> report.

Each stage is a plain typed function (list in, list out, keyword-only `model=`/`cache=`), so a
notebook can run them one at a time. The stages are composed once, in `modespace.build_mode_space`
(named groups -> extract -> embed -> cluster), and a run's cache, progress, timers and call
statistics live in a `run.RunContext`; `score()` is a mode space of the batch (and one of batch +
reference for `cluster_shares`) read into a report.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from clusterdiv import engine as engines
from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import ClusterdivError, InputError
from clusterdiv.core.progress import ProgressReporter
from clusterdiv.core.prompts import PromptTemplate
from clusterdiv.core.records import (
    Example,
)
from clusterdiv.io.corpus import LoadedCorpus, as_examples
from clusterdiv.llm.structured import CallStats
from clusterdiv.modes.config import ScoreConfig
from clusterdiv.modes.embed import Embedder, embed_texts
from clusterdiv.modes.modespace import BATCH, REFERENCE, ModeRow, ModeSpace, build_mode_space
from clusterdiv.modes.run import RunContext
from clusterdiv.modes.scoring import DiversityScore, score_labels
from clusterdiv.reports.report import (
    EmbeddingTruncations,
    FailureRecord,
    Failures,
    Report,
    Sampling,
    SamplingStep,
    SkippedInput,
    Truncations,
    count_embedding_truncations,
    count_truncations,
)
from clusterdiv.reports.sections import CLUSTER_SHARES, LabelCoverage

AUTO_SAMPLE_ABOVE = 20_000
"""`sample=None` scores every example up to this many, and a `sample="auto"` sample above it.

Why (eval/results/sample_auto.md, CLINC150 and HWU64, text representation): a seeded sample's score
sits below a full pass's by a bias that shrinks with its size (the clustering of fewer points merges
a little more), and the bootstrap interval does not cover that bias: auto's interval covered the
full pass in 6 of 10 runs, with errors up to 0.012. Above 20,000 the auto sample (8,000 or more)
costs at most 40% of a full pass, where every example is an LLM call under `criteria`/`hybrid`;
below it a full pass is affordable, so a tracked dataset keeps one definition longer."""

AUTO_SAMPLE_START = 8_000
"""The first auto sample. At 4,000 the bias against a full pass was 0.007-0.009; at 1,000 and
below the samples were 0.014-0.056 low, outside their own intervals."""

# ---------------------------------------------------------------- stages


def sample_examples(examples: Sequence[Example], *, n: int | str | None, seed: int) -> list[Example]:
    """A seeded subsample of `n` in original order; every example for None, "all" or "auto".

    "auto" is resolved by the score itself (`score_run`); callers that need every row (explorer,
    assignments, tail audit) pass it here and get the full pass.
    """
    if not isinstance(n, int) or n >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def sampling_policy(sample: int | str | None, n: int, *, bootstrap: int = 200) -> Literal["all", "fixed", "auto"]:
    """What `ScoreConfig.sample` means for an input of `n` examples.

    The default turns to auto only with an interval to grow against (`bootstrap` >= 2); asked for
    by name without one, auto is an error (in `score_run`), not a silent full pass.
    """
    if isinstance(sample, int):
        return "fixed" if sample < n else "all"
    if sample is None:
        return "auto" if n > AUTO_SAMPLE_ABOVE and bootstrap >= 2 else "all"
    return "auto" if sample == "auto" else "all"


def compute_report_metrics(examples: Sequence[Example], reference: Sequence[Example] | None, *,
                           config: ScoreConfig, embedder: Embedder, cache: ModelCache,
                           prompt: PromptTemplate, fields: Sequence[str], stats: CallStats,
                           progress: ProgressReporter | None = None, shared: ModeSpace | None = None
                           ) -> dict[str, Any]:
    """The `metrics` section: set metrics on the raw texts, and against `reference` when given.

    Embedding metrics use the raw texts (the usual definition), embedded with the same model and
    cache as the criteria. `cluster_shares` is read off `shared`, the batch + reference mode space
    (built here when not given), so both sets are clustered together.
    """
    from clusterdiv.metrics.registry import compute_set_metrics, select_metrics

    plan = select_metrics(config.metrics or "all", has_reference=reference is not None, none_keeps_reference=True)
    texts = [e.text for e in examples]
    reference_vectors = None
    with engines.use(config.engine):
        vectors = embed_texts(texts, model=embedder, cache=cache) if plan.needs_embeddings else None
        if reference is not None and plan.needs_reference_embeddings:
            reference_vectors = embed_texts([e.text for e in reference], model=embedder, cache=cache)
    values = compute_set_metrics(
        texts, embeddings=vectors, reference_embeddings=reference_vectors, select=set(plan.selected),
        seed=config.seed, bootstrap=config.bootstrap, self_bleu_sample=config.self_bleu_sample,
        reference_size=config.reference_size,
    )
    out: dict[str, Any] = {name: v.model_dump(mode="json") for name, v in values.items()}
    if shared is not None:
        out["cluster_shares"] = cluster_shares_section(shared, alpha=config.alpha)
    elif reference is not None:
        out["cluster_shares"] = shared_cluster_shares(
            examples, reference, config=config, embedder=embedder, cache=cache, prompt=prompt,
            fields=fields, stats=stats, progress=progress,
        )
    return out


def reference_key(row: ModeRow) -> str:
    """A row's id in the `score`/`explore` report formats: the reference's are prefixed `ref:`."""
    return row.example.id if row.group == BATCH else f"ref:{row.example.id}"


def cluster_shares_section(space: ModeSpace, *, alpha: float) -> dict[str, Any]:
    """The `cluster_shares` section of a batch + reference space (each mode's share in both, flagged
    by the test of `modes.shares` at false discovery rate `alpha`), as `Report.metrics["cluster_shares"]`
    holds it; `Report.cluster_shares` reads it back typed."""
    from clusterdiv.modes.shares import cluster_shares, shares_section

    summaries = {c.cluster_id: c.criteria_summary for c in space.summaries(key=reference_key)}
    clustered = space.clustered()
    rows = cluster_shares([int(r.mode) for r in clustered], [r.group == BATCH for r in clustered],  # type: ignore[arg-type]
                          [reference_key(r) for r in clustered], summaries=summaries, alpha=alpha,
                          names={c: n.name for c, n in space.names().items()})
    clustering = space.clustering
    return shares_section(rows, method=clustering.method, n_batch=len(space.clustered(BATCH)),
                          n_reference=len(space.clustered(REFERENCE)), n_clusters=clustering.n_clusters,
                          alpha=alpha).model_dump(mode="json")


def shared_cluster_shares(examples: Sequence[Example], reference: Sequence[Example], *,
                          config: ScoreConfig, embedder: Embedder, cache: ModelCache,
                          prompt: PromptTemplate, fields: Sequence[str], stats: CallStats,
                          progress: ProgressReporter | None = None) -> dict[str, Any]:
    """Cluster batch and reference together; report each mode's share in both."""
    run = RunContext(cache=cache, progress=progress, stats=stats)
    run.use_embedder(config.embedding_model, embedder)
    return cluster_shares_section(build_mode_space({BATCH: examples, REFERENCE: reference}, config, run,
                                                   timed=False, prompt=prompt, fields=fields), alpha=config.alpha)


# ---------------------------------------------------------------- composition


@dataclass
class ScoreResult:
    """A `score` run: the report and the mode spaces it was read from, for callers that go on (`explore`)."""

    report: Report
    space: ModeSpace  # the batch alone: the report's modes
    shared: ModeSpace | None = None  # batch + reference together (`metrics.cluster_shares`), with a reference


def score(data: Any, *, config: ScoreConfig | None = None, cache: ModelCache | None = None,
          progress: ProgressReporter | None = None, load_options: dict[str, Any] | None = None,
          reference: Any = None, reference_load_options: dict[str, Any] | None = None,
          **overrides: Any) -> Report:
    """Score the diversity of `data` (path, texts, Examples or a LoadedCorpus); see README.

    With `reference` (real data, same accepted types) the report adds MAUVE, k-NN
    precision/recall/density/coverage and per-cluster shares in one shared clustering.
    """
    # Validate overrides as fields (a dict for `llm` becomes LLMSettings), never copy them in raw.
    config = ScoreConfig.model_validate({**(config or ScoreConfig()).model_dump(), **overrides})
    with RunContext(cache=cache, progress=progress) as run:
        return score_run(data, config=config, run=run, load_options=load_options, reference=reference,
                         reference_load_options=reference_load_options).report


def score_run(data: Any, *, config: ScoreConfig, run: RunContext, load_options: dict[str, Any] | None = None,
              reference: Any = None, reference_load_options: dict[str, Any] | None = None) -> ScoreResult:
    """`score` in a run the caller holds; returns the mode spaces with the report.

    Python warnings raised on the way (a library's, or the cache's) are the report's `warnings`, not
    stderr's (`core.capture`): the JSON, the service and history see them too."""
    from clusterdiv.core.capture import collected_warnings

    with collected_warnings() as raised:
        scored = _score_run(data, config=config, run=run, load_options=load_options, reference=reference,
                            reference_load_options=reference_load_options)
    if raised:
        scored.report.warnings = list(dict.fromkeys([*scored.report.warnings, *raised]))
    return scored


def _score_run(data: Any, *, config: ScoreConfig, run: RunContext, load_options: dict[str, Any] | None = None,
               reference: Any = None, reference_load_options: dict[str, Any] | None = None) -> ScoreResult:
    with run.stage("load"):
        examples, corpus = as_examples(data, load_options=load_options or {})
        if not examples:
            raise InputError("no examples to score")

    examples, space, result, sampling = _scored_sample(examples, config=config, run=run)
    with run.stage("score"):
        clusters = space.summaries(top=config.top_clusters, per_cluster=config.examples_per_cluster)

    shared = None
    reference_corpus = None
    reference_label_field = (reference_load_options or {}).get("label_field")
    with run.stage("metrics"):
        metrics: dict[str, Any] = {}
        if (config.metrics or "none") != "none" or reference is not None:
            reference_examples = None
            if reference is not None:
                reference_examples, reference_corpus = as_examples(reference,
                                                                   load_options=reference_load_options or {})
                shared = build_mode_space({BATCH: examples, REFERENCE: reference_examples}, config, run,
                                          reuse=space, timed=False)
            metrics = compute_report_metrics(
                examples, reference_examples, config=config, embedder=run.embedder(config.embedding_model),
                cache=run.cache, prompt=space.prompt, fields=space.fields, stats=run.stats, progress=run.progress,
                shared=shared,
            )

    failures = [FailureRecord(example_id=r.example.id, reason=r.extraction.error or "unknown")  # type: ignore[union-attr]
                for r in space.failures()]
    skipped_rows = [s.model_dump() for s in corpus.skipped] if corpus is not None else []
    report = Report(
        source=corpus.path if corpus is not None else None,
        content_hash=corpus.content_hash if corpus is not None else None,
        ids=ids_note(corpus, reference_corpus),
        n_input=len(examples),
        n_samples=result.n_samples,
        n_clusters=result.n_clusters,
        n_noise=result.n_noise,
        n_modes=result.n_modes,
        score=result.score,
        score_normalized=result.score_normalized,
        ci95=result.ci95,
        ci95_normalized=result.ci95_normalized,
        normalization=result.normalization,
        clusters=clusters,
        failed=Failures(count=len(failures), reasons=failures),
        skipped=SkippedInput(count=len(skipped_rows), rows=skipped_rows),
        truncated=(count_truncations(examples, config.llm.max_input_chars) if config.representation.uses_llm
                   else Truncations()),
        embedding_truncated=embedding_truncations(examples, config=config, run=run, metrics=metrics),
        label_coverage=(coverage_by_label(shared, config=config, label_field=reference_label_field)
                        if shared is not None and reference_label_field else None),
        modes_from=space.representation,
        metrics=metrics,
        config=run.run_config(config, space, sample=config.sample),
        sampling=sampling,
        timings=run.finish(),
    )
    return ScoreResult(report=report, space=space, shared=shared)


def coverage_by_label(shared: ModeSpace, *, config: ScoreConfig, label_field: str) -> LabelCoverage:
    """Issue 31 item 3: the reference's own labels, a classifier fitted on its vectors (the joint space's,
    so the modes and the labels read the same vectors), and the modes' test per label (`modes.labels`)."""
    from clusterdiv.modes.labels import fit_labels, label_coverage

    batch, ref = shared.clustered(BATCH), shared.clustered(REFERENCE)
    missing = [r.example.id for r in ref if r.example.label is None]
    if missing:
        raise InputError(f"{len(missing)} reference rows have no {label_field!r} label (first: {missing[0]}): "
                         "coverage by label needs every reference row labelled", option="reference-label-field")

    def stack(rows: list[ModeRow]) -> np.ndarray:
        return np.asarray([r.vector for r in rows], dtype=np.float32).reshape(len(rows), -1)

    fit = fit_labels(stack(batch), stack(ref), [str(r.example.label) for r in ref], label_field=label_field,
                     seed=config.seed)
    return label_coverage(fit, batch_ids=[r.example.id for r in batch], reference_ids=[r.example.id for r in ref],
                          label_field=label_field, alpha=config.alpha)


def ids_note(corpus: LoadedCorpus | None, reference: LoadedCorpus | None = None) -> str | None:
    """The report's `ids`: where the batch's ids came from, and the reference's when one was read
    from a file (its ids appear in the report prefixed `ref:`)."""
    parts = ([corpus.ids] if corpus is not None and corpus.ids else []) + (
        [f"reference {reference.ids}"] if reference is not None and reference.ids else [])
    return "; ".join(parts) or None


def embedding_truncations(examples: Sequence[Example], *, config: ScoreConfig, run: RunContext,
                          metrics: dict[str, Any]) -> EmbeddingTruncations:
    """The examples whose own text the embedding model read only the opening of: counted where the
    texts were embedded, for the modes (text, hybrid) or for the embedding metrics."""
    from clusterdiv.metrics.registry import metric_spec

    embedded = config.representation.kind != "criteria" or any(
        metric_spec(name).needs_embeddings for name in metrics if name != CLUSTER_SHARES)
    if not embedded:
        return EmbeddingTruncations()
    embedder = run.embedder(config.embedding_model)
    cut = embedder.truncated([e.text for e in examples])
    return count_embedding_truncations(examples, cut, embedder.max_tokens)


def _clustered_score(examples: list[Example], *, config: ScoreConfig, run: RunContext
                     ) -> tuple[ModeSpace, DiversityScore]:
    space = build_mode_space({BATCH: examples}, config, run)
    if not space.clustered():
        raise ClusterdivError(f"every example failed extraction, e.g. {space.rows[0].extraction.error}"  # type: ignore[union-attr]
                              )
    with run.stage("score"):
        result = score_labels(space.labels(), reference_size=config.reference_size, n_boot=config.bootstrap,
                              seed=config.seed)
    return space, result


def _width(result: DiversityScore) -> float | None:
    lo, hi = result.ci95_normalized
    return None if result.n_samples < 3 else round(hi - lo, 6)


def _scored_sample(examples: list[Example], *, config: ScoreConfig, run: RunContext
                   ) -> tuple[list[Example], ModeSpace, DiversityScore, Sampling]:
    """The examples the report is computed on, their mode space and score, and how they were chosen.

    Auto draws one seeded permutation and scores growing prefixes of it, so each larger sample
    contains the last: under `criteria` only the new examples cost an LLM call. It stops when the
    interval is `sample_width` wide or every example is in; the next size is projected from the
    width shrinking as 1/sqrt(m), and at least 1.5 times the last so the steps stay few.
    """
    n = len(examples)
    policy = sampling_policy(config.sample, n, bootstrap=config.bootstrap)
    if policy != "auto":
        kept = sample_examples(examples, n=config.sample, seed=config.seed)
        space, result = _clustered_score(kept, config=config, run=run)
        note = ("every loaded example" if policy == "all"
                else f"a seeded random sample of {len(kept)} of {n} examples (sample={config.sample})")
        return kept, space, result, Sampling(policy=policy, population=n, scored=len(kept),
                                             steps=[SamplingStep(scored=len(kept), ci95_width=_width(result))],
                                             note=note)
    if config.bootstrap < 2:
        raise InputError("sample='auto' grows the sample until the interval is narrow enough, so it needs "
                         "the bootstrap interval (bootstrap >= 2)", option="bootstrap")
    order = random.Random(config.seed).sample(range(n), n)
    target = config.sample_width
    m = min(n, AUTO_SAMPLE_START)
    steps: list[SamplingStep] = []
    while True:
        kept = [examples[i] for i in sorted(order[:m])]
        space, result = _clustered_score(kept, config=config, run=run)
        width = _width(result)
        steps.append(SamplingStep(scored=m, ci95_width=width))
        if m == n or width is None or width <= target:
            break
        m = min(n, max(int(m * 1.5), math.ceil(1.1 * m * (width / target) ** 2)))
    if m == n:
        note = (f"every one of the {n} examples: " + (f"no more than the first auto sample ({AUTO_SAMPLE_START})"
                if n <= AUTO_SAMPLE_START else f"the interval was still wider than {target} below that"))
        return kept, space, result, Sampling(policy="auto", population=n, scored=m, target_width=target,
                                             steps=steps, note=note)
    note = (f"a seeded random sample of {m} of {n} examples, grown until score_normalized's 95% interval "
            f"was at most {target} wide (or every example was in). The interval is the bootstrap over draws "
            f"of {m} from the estimated mode population, so it covers the sampling of the scored examples "
            "(without a finite-population correction: conservative) and holds the clustering fixed; "
            "modes found in a sample sit slightly below a full pass's (eval/results/sample_auto.md). "
            "sample='all' scores every example.")
    return kept, space, result, Sampling(policy="auto", population=n, scored=m, target_width=target,
                                         steps=steps, note=note)
