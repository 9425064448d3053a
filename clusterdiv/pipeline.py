"""The scoring pipeline, top to bottom: load -> extract -> embed -> cluster -> score -> report.

Each stage is a plain typed function (list in, list out, keyword-only `model=`/`cache=`), so a
notebook can run them one at a time; `score()` is only the composition plus timings.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from clusterdiv import __version__
from clusterdiv.cache import ModelCache
from clusterdiv.cluster import NOISE, Clustering, ClusterParams, cluster_vectors
from clusterdiv.embed import DEFAULT_EMBEDDING_MODEL, Embedder, embed_texts
from clusterdiv.errors import ClusterdivError, InputError
from clusterdiv.extract import extract_criteria
from clusterdiv.llm.plugins import get_registry
from clusterdiv.llm.structured import CallStats, LLMSettings
from clusterdiv.progress import NullProgress, ProgressReporter
from clusterdiv.prompts import PromptTemplate
from clusterdiv.records import ClusterAssignment, EmbeddedExample, Example, Extraction
from clusterdiv.report import (
    ClusterSummary,
    FailureRecord,
    Failures,
    Report,
    RunConfig,
    SkippedInput,
    Timings,
    Truncations,
    ValueCount,
    count_truncations,
)
from clusterdiv.represent import Representation, RepresentationInfo, copied_values, criteria_text, represent
from clusterdiv.scoring import DiversityScore, score_labels


class ScoreConfig(BaseModel):
    """Everything that defines a scoring run; recorded in the report's `config`."""

    model_config = ConfigDict(extra="forbid")

    def cluster_params(self) -> ClusterParams:
        """The clustering settings with the threshold resolved for the representation in use."""
        return self.clustering.for_representation(self.representation.kind)

    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    prompt_file: str | None = None
    criteria: list[str] | None = None  # which criteria to embed; None = the prompt file's `embed`
    representation: Representation = Field(default_factory=Representation)
    clustering: ClusterParams = Field(default_factory=ClusterParams)
    seed: int = 0
    sample: int | None = Field(default=None, ge=1)
    reference_size: int = Field(default=100, ge=2)
    bootstrap: int = Field(default=200, ge=0)
    metrics: str | None = "all"  # metric names/groups for the `metrics` section; "none" to skip
    self_bleu_sample: int | None = Field(default=2000, ge=2)
    top_clusters: int = Field(default=10, ge=1)
    examples_per_cluster: int = Field(default=5, ge=1)


# ---------------------------------------------------------------- stages


def sample_examples(examples: Sequence[Example], *, n: int | None, seed: int) -> list[Example]:
    """A seeded subsample in original order (order matters for nothing but readability)."""
    if n is None or n >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def embed_extractions(extractions: Sequence[Extraction], *, model: Embedder, cache: ModelCache,
                      fields: Sequence[str], progress: ProgressReporter | None = None
                      ) -> list[EmbeddedExample]:
    """Embed the chosen criteria of every successful extraction; failed ones have nothing to embed."""
    progress = progress or NullProgress()
    ok = [e for e in extractions if e.ok]
    texts = [criteria_text(e.criteria or {}, fields) for e in ok]
    empty = [e.example_id for e, t in zip(ok, texts, strict=True) if not t]
    if empty:
        raise InputError(f"criteria {list(fields)} are empty for {len(empty)} examples, e.g. {empty[0]}")
    progress.start("embed", len(texts))
    try:
        vectors = embed_texts(texts, model=model, cache=cache,
                              progress=lambda k: progress.advance("embed", k))
    finally:
        progress.finish("embed")
    return [
        EmbeddedExample(example_id=e.example_id, embedded_text=t, vector=v.tolist())
        for e, t, v in zip(ok, texts, vectors, strict=True)
    ]


def extract_if_needed(examples: Sequence[Example], *, config: ScoreConfig, cache: ModelCache,
                      prompt: PromptTemplate, stats: CallStats | None = None,
                      progress: ProgressReporter | None = None) -> list[Extraction]:
    """Criteria for every example when the representation uses them; none (no LLM call) for `text`."""
    if not config.representation.uses_llm:
        return []
    return extract_criteria(examples, model=config.llm, cache=cache, prompt=prompt, stats=stats,
                            progress=progress)


def represent_examples(examples: Sequence[Example], extractions: Sequence[Extraction], *, config: ScoreConfig,
                       embedder: Embedder, cache: ModelCache, prompt: PromptTemplate, fields: Sequence[str],
                       progress: ProgressReporter | None = None
                       ) -> tuple[list[EmbeddedExample], RepresentationInfo]:
    """The vectors the modes are built from, under the configured representation (see represent.py)."""
    copied = copied_values([dict(s.output) for s in prompt.spec.few_shot], fields)
    return represent(examples, extractions, representation=config.representation, model=embedder, cache=cache,
                     fields=fields, copied=copied, distance_threshold=config.cluster_params().distance_threshold,
                     progress=progress)


def cluster_examples(embedded: Sequence[EmbeddedExample], *, params: ClusterParams, seed: int
                     ) -> tuple[list[ClusterAssignment], Clustering]:
    X = np.asarray([e.vector for e in embedded], dtype=np.float32).reshape(len(embedded), -1)
    clustering = cluster_vectors(X, params=params, seed=seed)
    assignments = [
        ClusterAssignment(example_id=e.example_id, cluster=label)
        for e, label in zip(embedded, clustering.labels, strict=True)
    ]
    return assignments, clustering


def summarize_clusters(assignments: Sequence[ClusterAssignment], extractions: Sequence[Extraction], *,
                       top: int, per_cluster: int, texts: dict[str, str] | None = None) -> list[ClusterSummary]:
    """The largest clusters with their share, a few example ids and their most common criteria.

    A cluster with no criteria (the `text` representation makes no LLM call) is summarised by one
    member's text instead, from `texts` (id -> text).
    """
    by_id = {e.example_id: e for e in extractions if e.ok}
    texts = texts or {}
    members: dict[int, list[str]] = {}
    for a in assignments:
        if a.cluster != NOISE:
            members.setdefault(a.cluster, []).append(a.example_id)
    n = len(assignments)
    summaries = []
    for cluster_id, ids in sorted(members.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]:
        labelled = [i for i in ids if i in by_id]
        top_values: dict[str, list[ValueCount]] = {}
        if labelled:
            for name in (by_id[labelled[0]].criteria or {}):
                counts = Counter((by_id[i].criteria or {}).get(name, "") for i in labelled)
                top_values[name] = [ValueCount(value=v, count=c) for v, c in counts.most_common(3)]
            summary = "; ".join(
                f"{name}: " + ", ".join(f"{vc.value} ({vc.count})" for vc in vals[:2])
                for name, vals in top_values.items()
            )
        else:
            first = texts.get(ids[0], ids[0])
            clipped = first if len(first) <= 80 else first[:77] + "..."
            summary = f'"{clipped}"' + (f" and {len(ids) - 1} similar" if len(ids) > 1 else "")
        summaries.append(ClusterSummary(
            cluster_id=cluster_id, size=len(ids), share=len(ids) / n, example_ids=ids[:per_cluster],
            criteria_summary=summary, top_values=top_values,
        ))
    return summaries


def compute_report_metrics(examples: Sequence[Example], reference: Sequence[Example] | None, *,
                           config: ScoreConfig, embedder: Embedder, cache: ModelCache,
                           prompt: PromptTemplate, fields: Sequence[str], stats: CallStats,
                           progress: ProgressReporter | None = None) -> dict[str, Any]:
    """The `metrics` section: set metrics on the raw texts, and against `reference` when given.

    Embedding metrics use the raw texts (the usual definition), embedded with the same model and
    cache as the criteria. `cluster_shares` re-uses the criteria pipeline on the reference so both
    sets are clustered together.
    """
    from clusterdiv.metrics.registry import METRIC_GROUPS, compute_set_metrics, resolve_selection

    selection = (config.metrics or "all")
    selected = resolve_selection(None if selection in ("all", "none") else selection)
    if selection == "none":
        selected = set(METRIC_GROUPS["reference"])
    if reference is None:
        selected -= set(METRIC_GROUPS["reference"])
    texts = [e.text for e in examples]
    needs_vectors = bool(selected & (set(METRIC_GROUPS["semantic"]) | set(METRIC_GROUPS["reference"])))
    vectors = embed_texts(texts, model=embedder, cache=cache) if needs_vectors else None
    reference_vectors = None
    if reference is not None and selected & set(METRIC_GROUPS["reference"]):
        reference_vectors = embed_texts([e.text for e in reference], model=embedder, cache=cache)
    values = compute_set_metrics(
        texts, embeddings=vectors, reference_embeddings=reference_vectors, select=selected,
        seed=config.seed, bootstrap=config.bootstrap, self_bleu_sample=config.self_bleu_sample,
    )
    out: dict[str, Any] = {name: v.model_dump(mode="json") for name, v in values.items()}
    if reference is not None:
        out["cluster_shares"] = shared_cluster_shares(
            examples, reference, config=config, embedder=embedder, cache=cache, prompt=prompt,
            fields=fields, stats=stats, progress=progress,
        )
    return out


def shared_clustering(examples: Sequence[Example], reference: Sequence[Example], *,
                      config: ScoreConfig, embedder: Embedder, cache: ModelCache,
                      prompt: PromptTemplate, fields: Sequence[str], stats: CallStats,
                      progress: ProgressReporter | None = None
                      ) -> tuple[list[Extraction], list[EmbeddedExample], list[ClusterAssignment], Clustering]:
    """Batch and reference extracted, embedded and clustered together, so both live in one mode space.

    Reference ids are prefixed `ref:`. Returns every extraction (batch then reference, failed ones
    included) and the embedded examples and assignments of the successful ones, in that order.
    `shared_cluster_shares` and the explorer both use it, so their clusterings are the same.
    """
    batch_ex = extract_if_needed(examples, config=config, cache=cache, prompt=prompt, stats=stats)
    ref_ex = extract_if_needed(reference, config=config, cache=cache, prompt=prompt, stats=stats,
                               progress=progress)
    ref_ex = [e.model_copy(update={"example_id": f"ref:{e.example_id}"}) for e in ref_ex]
    both = list(batch_ex) + list(ref_ex)
    union = list(examples) + [e.model_copy(update={"id": f"ref:{e.id}"}) for e in reference]
    embedded, _ = represent_examples(union, both, config=config, embedder=embedder, cache=cache, prompt=prompt,
                                     fields=fields)
    assignments, clustering = cluster_examples(embedded, params=config.cluster_params(), seed=config.seed)
    return both, embedded, assignments, clustering


def shared_cluster_shares(examples: Sequence[Example], reference: Sequence[Example], *,
                          config: ScoreConfig, embedder: Embedder, cache: ModelCache,
                          prompt: PromptTemplate, fields: Sequence[str], stats: CallStats,
                          progress: ProgressReporter | None = None) -> dict[str, Any]:
    """Cluster batch and reference together; report each mode's share in both."""
    from clusterdiv.shares import cluster_shares

    both, _, assignments, clustering = shared_clustering(
        examples, reference, config=config, embedder=embedder, cache=cache, prompt=prompt,
        fields=fields, stats=stats, progress=progress,
    )
    texts = {e.id: e.text for e in examples} | {f"ref:{e.id}": e.text for e in reference}
    summaries = {c.cluster_id: c.criteria_summary for c in summarize_clusters(
        assignments, both, top=10**6, per_cluster=1, texts=texts)}
    rows = cluster_shares(
        [a.cluster for a in assignments], [not a.example_id.startswith("ref:") for a in assignments],
        [a.example_id for a in assignments], summaries=summaries,
    )
    return {
        "method": clustering.method,
        "n_batch": sum(1 for a in assignments if not a.example_id.startswith("ref:")),
        "n_reference": sum(1 for a in assignments if a.example_id.startswith("ref:")),
        "n_shared_clusters": clustering.n_clusters,
        "under_covered": [r.cluster_id for r in rows if r.flag in ("missing", "under")],
        "over_produced": [r.cluster_id for r in rows if r.flag in ("over", "batch_only")],
        "clusters": [r.model_dump(mode="json") for r in rows],
    }


# ---------------------------------------------------------------- composition


def _as_examples(data: Any, *, load_options: dict[str, Any]) -> tuple[list[Example], Any]:
    from clusterdiv.corpus import LoadedCorpus, examples_from_texts, load_corpus

    if isinstance(data, LoadedCorpus):
        return list(data.examples), data
    if isinstance(data, (str, Path)) and not (isinstance(data, str) and "\n" in data):
        corpus = load_corpus(data, **load_options)
        return list(corpus.examples), corpus
    if isinstance(data, Sequence) and all(isinstance(x, Example) for x in data):
        return list(data), None
    if isinstance(data, Sequence) and all(isinstance(x, str) for x in data):
        return examples_from_texts(list(data)), None
    raise InputError("score() takes a path, a list of texts, a list of Examples or a LoadedCorpus")


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
    own_cache = cache is None
    cache = cache or ModelCache()
    progress = progress or NullProgress()
    timings = Timings()
    started = time.perf_counter()
    try:
        t = time.perf_counter()
        examples, corpus = _as_examples(data, load_options=load_options or {})
        examples = sample_examples(examples, n=config.sample, seed=config.seed)
        if not examples:
            raise InputError("no examples to score")
        timings.load_s = time.perf_counter() - t

        prompt = PromptTemplate.load(config.prompt_file)
        fields = config.criteria or prompt.spec.embed
        unknown = [f for f in fields if f not in prompt.criteria_names]
        if unknown:
            raise InputError(f"unknown criteria {unknown}; the prompt defines {prompt.criteria_names}")
        embedder = Embedder(config.embedding_model)

        t = time.perf_counter()
        stats = CallStats()
        extractions = extract_if_needed(examples, config=config, cache=cache, prompt=prompt, stats=stats,
                                        progress=progress)
        timings.extract_s = time.perf_counter() - t

        t = time.perf_counter()
        hits_before = cache.hits["embedding"]
        embedded, representation = represent_examples(examples, extractions, config=config, embedder=embedder,
                                                      cache=cache, prompt=prompt, fields=fields, progress=progress)
        timings.embed_s = time.perf_counter() - t
        if not embedded:
            raise ClusterdivError(f"every example failed extraction, e.g. {extractions[0].error}")

        t = time.perf_counter()
        params = config.cluster_params()
        assignments, clustering = cluster_examples(embedded, params=params, seed=config.seed)
        timings.cluster_s = time.perf_counter() - t

        t = time.perf_counter()
        result: DiversityScore = score_labels(
            [a.cluster for a in assignments], reference_size=config.reference_size,
            n_boot=config.bootstrap, seed=config.seed,
        )
        clusters = summarize_clusters(assignments, extractions, top=config.top_clusters,
                                      per_cluster=config.examples_per_cluster,
                                      texts={e.id: e.text for e in examples})
        timings.score_s = time.perf_counter() - t

        t = time.perf_counter()
        metrics: dict[str, Any] = {}
        if (config.metrics or "none") != "none" or reference is not None:
            reference_examples = None
            if reference is not None:
                reference_examples, _ = _as_examples(reference, load_options=reference_load_options or {})
            metrics = compute_report_metrics(
                examples, reference_examples, config=config, embedder=embedder, cache=cache,
                prompt=prompt, fields=fields, stats=stats, progress=progress,
            )
        timings.metrics_s = time.perf_counter() - t

        failures = [FailureRecord(example_id=e.example_id, reason=e.error or "unknown")
                    for e in extractions if not e.ok]
        timings.llm_calls = stats.calls
        timings.llm_cache_hits = stats.cache_hits
        timings.prompt_tokens = stats.prompt_tokens
        timings.completion_tokens = stats.completion_tokens
        timings.embedding_calls = embedder.calls
        timings.embedding_cache_hits = cache.hits["embedding"] - hits_before
        timings.total_s = time.perf_counter() - started
        skipped_rows = [s.model_dump() for s in corpus.skipped] if corpus is not None else []
        return Report(
            source=corpus.path if corpus is not None else None,
            content_hash=corpus.content_hash if corpus is not None else None,
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
            modes_from=representation,
            metrics=metrics,
            config=RunConfig(
                model=config.llm.model,
                model_fingerprint=get_registry().fingerprint(config.llm.model),
                embedding_model=embedder.spec.name,
                embedding_fingerprint=embedder.spec.fingerprint,
                prompt_file=prompt.source if config.prompt_file else "bundled:extract_criteria.yaml",
                prompt_sha256=prompt.content_hash,
                embedded_criteria=list(fields) if config.representation.uses_llm else [],
                seed=config.seed,
                sample=config.sample,
                reference_size=config.reference_size,
                clustering=params.model_dump(),
                clustering_method=clustering.method,
                clusterdiv_version=__version__,
            ),
            timings=timings,
        )
    finally:
        if own_cache:
            cache.close()
