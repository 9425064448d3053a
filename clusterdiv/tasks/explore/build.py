"""`explore()`: everything the collapsed-mode explorer shows, computed once as an `Exploration`.

The page must agree with the numbers a user already has, so nothing here is a second opinion:

* `report` is the ordinary `score()` report of the batch (`pipeline.score_run`, in the same run);
* without a reference the explorer's clusters ARE the report's clusters: the explorer reads the
  report's own mode space (`modespace.ModeSpace`), no stage runs twice;
* with a reference, it reads the batch + reference space the report's `cluster_shares` section was
  computed from, and each cluster carries its batch share, reference share and flag from
  `shares.cluster_shares`.

The explorer's own stages then add what a report has no room for: a name per cluster (by default the
mode space's extractive names, `modes.names`, the ones the report's tables use; LLM names only with
`names="llm"` or a `naming_model`, one cached call each, see `naming.py`), 2-D map coordinates
(`layout.py`) and a short text per point.
Examples whose extraction failed have no point; they stay listed in `report.failed` (batch) and
`reference_failed` (reference), never dropped silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError
from clusterdiv.core.progress import ProgressReporter
from clusterdiv.core.records import ClusterAssignment, Example, Extraction
from clusterdiv.io.corpus import as_examples
from clusterdiv.llm.structured import LLMSettings
from clusterdiv.modes.config import ScoreConfig
from clusterdiv.modes.modespace import BATCH, REFERENCE, ModeSpace
from clusterdiv.modes.run import RunContext
from clusterdiv.modes.shares import ClusterShare, cluster_shares
from clusterdiv.modes.stages import summarize_clusters
from clusterdiv.reports.report import FailureRecord, Failures
from clusterdiv.tasks.explore.downloads import build_downloads
from clusterdiv.tasks.explore.layout import layout_2d
from clusterdiv.tasks.explore.model import Exploration, MapPoint, NamedCluster
from clusterdiv.tasks.explore.naming import (
    NAME_LIMIT,
    ClusterMember,
    ClusterName,
    centroids,
    load_naming_prompt,
    name_clusters,
    representatives,
    terms_names,
)
from clusterdiv.tasks.score import reference_key, sample_examples, score_run

EMBEDDED = {"text": "raw-text", "criteria": "LLM-criteria", "hybrid": "raw-text + LLM-criteria"}
POINT_TEXT_CHARS = 300  # the page shows a glimpse; the full text stays with the user's data
EXAMPLES_PER_SOURCE = 10  # representative ids per cluster and source, most central first
NamesFrom = Literal["terms", "llm"]


def _truncate(text: str, limit: int = POINT_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " ..."


def _naming_settings(naming_model: LLMSettings | str | None, config: ScoreConfig) -> LLMSettings:
    """The extraction model unless told otherwise (a model name keeps the other settings)."""
    if naming_model is None:
        return config.llm
    if isinstance(naming_model, str):
        return config.llm.model_copy(update={"model": naming_model})
    return naming_model


def _default_title(corpus: Any) -> str:
    return Path(corpus.path).name if corpus is not None and getattr(corpus, "path", None) else "clusterdiv exploration"


def _stem(corpus: Any, title: str | None) -> str:
    """The downloads' file name stem: the input file's, else a tidy title, else `exploration`."""
    if corpus is not None and getattr(corpus, "path", None):
        return Path(corpus.path).stem or Path(corpus.path).name
    tidy = "-".join(re.findall(r"[A-Za-z0-9_]+", title or ""))[:60]
    return tidy or "exploration"


def explore(
    data: Any,
    *,
    reference: Any = None,
    config: ScoreConfig | None = None,
    cache: ModelCache | None = None,
    progress: ProgressReporter | None = None,
    load_options: dict[str, Any] | None = None,
    reference_load_options: dict[str, Any] | None = None,
    title: str | None = None,
    names: NamesFrom | None = None,
    naming_model: LLMSettings | str | None = None,
    name_limit: int | None = NAME_LIMIT,
    downloads: bool = False,
    subset_budget: int | None = None,
    id_field: str | None = None,
) -> Exploration:
    """Score `data` and build the explorer's document (see the module docstring).

    `data` and `reference` take what `score()` takes (path, texts, Examples, LoadedCorpus).
    `names` is where cluster names come from: "terms" (the default) are extractive and cost no call
    (`modes.names`: distinctive words, plus the most central member in the description); "llm" asks
    the LLM, grounded in the members (the default when `naming_model` is given). `naming_model` names
    clusters with another model than the one that extracted criteria (few calls, so a stronger
    model is affordable); by default the extraction model names them. Only the `name_limit`
    largest clusters are named by the LLM (None = all); the rest keep their extractive name, saying so.
    `downloads=True` adds the page's downloads (`downloads.py`): a diverse subset of `subset_budget`
    examples (default half the batch) and, with a reference, real seeds for the modes the batch
    lacks; `id_field` is the id field written back into the subset's records.
    """
    config = ScoreConfig.model_validate((config or ScoreConfig()).model_dump())
    if not isinstance(config.sample, int):  # the page shows every example: a full pass, never an auto sample
        config = config.model_copy(update={"sample": "all"})
    with RunContext(cache=cache, progress=progress) as run:
        examples, corpus = as_examples(data, load_options=load_options or {})
        ref_examples: list[Example] | None = None
        ref_corpus = None
        if reference is not None:
            ref_examples, ref_corpus = as_examples(reference, load_options=reference_load_options or {})
            if not ref_examples:
                raise InputError("the reference has no examples")
        scored = score_run(corpus if corpus is not None else examples, config=config, run=run,
                           reference=ref_examples)
        report = scored.report

        # The report's own mode space: the batch alone, or batch + reference as in `cluster_shares`.
        space = scored.shared if scored.shared is not None else scored.space
        fields = space.fields
        extractions = space.extractions(reference_key)  # ids as the reports know them (`ref:` prefix)
        members = [
            ClusterMember(example_id=reference_key(r), source="batch" if r.group == BATCH else "reference",
                          cluster=int(r.mode),  # type: ignore[arg-type]
                          text=r.example.text,
                          criteria=(r.extraction.criteria if r.extraction is not None and r.extraction.ok else None) or {})
            for r in space.clustered()
        ]
        vectors = space.vectors()

        by_llm = (names or ("llm" if naming_model is not None else "terms")) == "llm"
        naming = _naming_settings(naming_model, config)
        naming_prompt = load_naming_prompt() if by_llm else None
        extractive = space.names()  # the names the report's own tables give these modes
        if naming_prompt is not None:
            with run.stage("naming"):  # in the report's timings, calls and cache hits like extraction's
                named = name_clusters(members, vectors, fields=fields, model=naming, cache=run.cache,
                                      prompt=naming_prompt, progress=run.progress, limit=name_limit,
                                      extractive=extractive, stats=run.stats)
        else:
            named = terms_names(extractive)

        coords, map_method = layout_2d(vectors, seed=config.seed)
        kind = space.representation.kind
        map_caption = (f"{'UMAP' if map_method == 'umap' else map_method.upper()} of the "
                       f"{EMBEDDED.get(kind, kind)} embeddings the modes were clustered from "
                       "(a picture; counts come from the clustering)")
        points = [
            MapPoint(example_id=m.example_id, source=m.source, cluster=m.cluster, x=float(x), y=float(y),
                     text=_truncate(m.text), criteria=m.criteria)
            for m, (x, y) in zip(members, coords.tolist(), strict=True)
        ]
        shares = None
        if ref_examples is not None:
            shares = {r.cluster_id: r for r in cluster_shares(
                [m.cluster for m in members], [m.source == "batch" for m in members],
                [m.example_id for m in members], alpha=config.alpha)}
        clusters = _named_clusters(members, vectors, extractions, named, shares,
                                   labels=space.gold_labels(reference_key))
        _place_labels(clusters, members, coords)
        offered = None
        if downloads:
            offered = build_downloads(
                sample_examples(examples, n=config.sample, seed=config.seed), ref_examples, config=config,
                cache=run.cache, stem=_stem(corpus, title), names={c.cluster_id: c.name for c in clusters},
                budget=subset_budget, text_field=corpus.text_field if corpus is not None else None,
                id_field=id_field)

        return Exploration(
            title=title or _default_title(corpus),
            report=report.model_copy(update={"timings": run.finish()}),  # the score's, plus naming and the page
            clustering_method=space.clustering.method,
            map_method=map_method,
            map_caption=map_caption,
            points=points,
            clusters=clusters,
            has_reference=ref_examples is not None,
            naming_model=naming.model if by_llm else None,
            naming_prompt_sha256=naming_prompt.content_hash if naming_prompt is not None else None,
            reference_failed=_reference_failures(space) if ref_examples is not None else None,
            reference_source=getattr(ref_corpus, "path", None),
            downloads=offered,
        )


def _place_labels(clusters: list[NamedCluster], members: list[ClusterMember], coords: np.ndarray) -> None:
    """Each cluster's name position on the map: the median of its points, robust to a stray member."""
    at: dict[int, list[int]] = {}
    for i, m in enumerate(members):
        at.setdefault(m.cluster, []).append(i)
    for c in clusters:
        if c.cluster_id in at:
            x, y = np.median(coords[at[c.cluster_id]], axis=0).tolist()
            c.label_x, c.label_y = float(x), float(y)


def _reference_failures(space: ModeSpace) -> Failures:
    failed = [FailureRecord(example_id=reference_key(r), reason=r.extraction.error or "unknown")  # type: ignore[union-attr]
              for r in space.failures(REFERENCE)]
    return Failures(count=len(failed), reasons=failed)


def _named_clusters(members: list[ClusterMember], vectors: np.ndarray, extractions: list[Extraction],
                    names: list[ClusterName], shares: dict[int, ClusterShare] | None, *,
                    labels: dict[str, str | None] | None = None) -> list[NamedCluster]:
    """One NamedCluster per cluster (noise is no mode with a name), largest first (batch + reference);
    with gold `labels` (member id -> label) each gets its top labels and purity."""
    reps = representatives(members, vectors, centroids(members, vectors))
    n_batch = sum(1 for m in members if m.source == "batch")
    summarized = {s.cluster_id: s for s in summarize_clusters(
        [ClusterAssignment(example_id=m.example_id, cluster=m.cluster) for m in members], extractions,
        top=10**6, per_cluster=1, texts={m.example_id: m.text for m in members}, labels=labels)}
    summaries = {c: s.criteria_summary for c, s in summarized.items()}
    out = []
    for named in names:
        c = named.cluster_id
        batch_ids = [members[i].example_id for i in reps[c] if members[i].source == "batch"]
        ref_ids = [members[i].example_id for i in reps[c] if members[i].source == "reference"]
        row = shares.get(c) if shares is not None else None
        out.append(NamedCluster(
            cluster_id=c,
            size=len(batch_ids),
            share=(row.batch_share if row is not None else len(batch_ids) / n_batch if n_batch else 0.0),
            reference_size=row.reference_count if row is not None else None,
            reference_share=row.reference_share if row is not None else None,
            flag=row.flag if row is not None and row.flag != "balanced" else None,
            name=named.name,
            description=named.description,
            named_by=named.named_by,
            naming_error=named.naming_error,
            description_error=named.description_error,
            criteria_summary=summaries.get(c, ""),
            example_ids=batch_ids[:EXAMPLES_PER_SOURCE] + ref_ids[:EXAMPLES_PER_SOURCE],
            labels=summarized[c].labels if c in summarized else None,
            label_purity=summarized[c].label_purity if c in summarized else None,
        ))
    return sorted(out, key=lambda nc: (-(nc.size + (nc.reference_size or 0)), nc.cluster_id))
