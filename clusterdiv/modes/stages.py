"""The stages one mode space is made of, as plain typed functions over one group of examples.

`modespace.build_mode_space` composes them over one or more named groups; a notebook can call them
one at a time. Each takes its inputs as a list and its model and cache as keyword arguments, and
returns a list aligned with what it was given (failed extractions have nothing to embed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError
from clusterdiv.core.progress import NullProgress, ProgressReporter
from clusterdiv.core.prompts import PromptTemplate
from clusterdiv.core.records import (
    ClusterAssignment,
    EmbeddedExample,
    Example,
    Extraction,
    RepresentationInfo,
)
from clusterdiv.llm.structured import CallStats
from clusterdiv.modes.cluster import NOISE, Clustering, ClusterParams, cluster_vectors
from clusterdiv.modes.config import ScoreConfig
from clusterdiv.modes.embed import Embedder, embed_texts
from clusterdiv.modes.extract import extract_criteria
from clusterdiv.modes.represent import copied_values, criteria_text, represent
from clusterdiv.reports.report import ClusterSummary, ValueCount


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
                       top: int, per_cluster: int, texts: dict[str, str] | None = None,
                       names: dict[int, str] | None = None,
                       labels: dict[str, str | None] | None = None) -> list[ClusterSummary]:
    """The largest clusters with their share, a few example ids, their most common criteria and
    their name from `names` (`ModeSpace.names`).

    A cluster with no criteria (the `text` representation makes no LLM call) is summarised by one
    member's text instead, from `texts` (id -> text). With gold `labels` (id -> label, from
    `--label-field`) each cluster also gets its top labels and purity (`label_mix`).
    """
    by_id = {e.example_id: e for e in extractions if e.ok}
    texts = texts or {}
    gold = labels if labels and any(v is not None for v in labels.values()) else None
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
            criteria_summary=summary, top_values=top_values, name=(names or {}).get(cluster_id, ""),
            **(label_mix([gold.get(i) for i in ids]) if gold is not None else {}),
        ))
    return summaries


def label_mix(member_labels: Sequence[str | None], *, top: int = 3) -> dict[str, Any]:
    """A mode's most common gold labels and its purity (the majority label's share of the members
    that carry a label; None when none does), so a mode that mixes intents shows it at a glance.
    Members without a label (a reference read without `--label-field`, a row with an empty label)
    are left out of both: they say nothing about how well the labels agree. The keys are
    `ClusterSummary`'s."""
    counts = Counter(v for v in member_labels if v is not None)
    given = sum(counts.values())
    return {"labels": [ValueCount(value=v, count=c) for v, c in counts.most_common(top)],
            "label_purity": round(counts.most_common(1)[0][1] / given, 6) if given else None}


