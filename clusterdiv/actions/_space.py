"""The mode space the actions work in: the stages of `score`, batch alone or batch + reference together.

With a reference the two sets are clustered together (`pipeline.shared_clustering`, the same call the
report's `cluster_shares` and the explorer make), so "mode 7 is 12% of real data but 1% of the batch"
is about one mode. Vectors are unit norm (cosine = dot product).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from clusterdiv.cache import ModelCache
from clusterdiv.records import Example, Extraction

REF_PREFIX = "ref:"


@dataclass
class ModeSpace:
    """Every clustered example (batch first, then reference ids prefixed `ref:`) with its mode."""

    ids: list[str]
    vectors: np.ndarray
    labels: np.ndarray
    is_batch: np.ndarray
    extractions: dict[str, Extraction]
    summaries: dict[int, str]
    method: str
    n_clusters: int
    shares: dict[int, dict] = field(default_factory=dict)  # mode -> ClusterShare dump (with a reference)

    def batch_index(self) -> dict[str, int]:
        return {i: k for k, i in enumerate(self.ids) if self.is_batch[k]}

    def reference_index(self) -> dict[str, int]:
        return {i[len(REF_PREFIX):]: k for k, i in enumerate(self.ids) if not self.is_batch[k]}


def build_space(examples: Sequence[Example], reference: Sequence[Example] | None, *, config: object,
                cache: ModelCache, embedder: object = None) -> ModeSpace:
    """Extract (only for LLM representations), represent and cluster; shares per mode with a reference."""
    from clusterdiv.embed import Embedder
    from clusterdiv.llm.structured import CallStats
    from clusterdiv.pipeline import (
        ScoreConfig,
        cluster_examples,
        extract_if_needed,
        represent_examples,
        shared_clustering,
        summarize_clusters,
    )
    from clusterdiv.prompts import PromptTemplate
    from clusterdiv.shares import cluster_shares

    assert isinstance(config, ScoreConfig)
    prompt = PromptTemplate.load(config.prompt_file)
    fields = config.criteria or prompt.spec.embed
    embedder = embedder if isinstance(embedder, Embedder) else Embedder(config.embedding_model)
    stats = CallStats()
    texts = {e.id: e.text for e in examples}
    if reference is None:
        extractions = extract_if_needed(examples, config=config, cache=cache, prompt=prompt, stats=stats)
        embedded, _ = represent_examples(examples, extractions, config=config, embedder=embedder, cache=cache,
                                         prompt=prompt, fields=fields)
        assignments, clustering = cluster_examples(embedded, params=config.cluster_params(), seed=config.seed)
    else:
        extractions, embedded, assignments, clustering = shared_clustering(
            examples, reference, config=config, embedder=embedder, cache=cache, prompt=prompt, fields=fields,
            stats=stats)
        texts |= {f"{REF_PREFIX}{e.id}": e.text for e in reference}
    summaries = {c.cluster_id: c.criteria_summary for c in summarize_clusters(
        assignments, extractions, top=10**6, per_cluster=1, texts=texts)}
    ids = [a.example_id for a in assignments]
    is_batch = np.array([not i.startswith(REF_PREFIX) for i in ids]) if reference is not None \
        else np.ones(len(ids), dtype=bool)
    labels = np.array([a.cluster for a in assignments], dtype=np.int64)
    vectors = np.asarray([e.vector for e in embedded], dtype=np.float32).reshape(len(embedded), -1)
    space = ModeSpace(ids=ids, vectors=vectors, labels=labels, is_batch=is_batch,
                      extractions={e.example_id: e for e in extractions}, summaries=summaries,
                      method=clustering.method, n_clusters=clustering.n_clusters)
    if reference is not None:
        rows = cluster_shares(labels.tolist(), is_batch.tolist(), ids, summaries=summaries)
        space.shares = {r.cluster_id: r.model_dump(mode="json") for r in rows}
    return space


def spread_order(vectors: np.ndarray, *, limit: int | None = None) -> list[int]:
    """Farthest-point order of rows: the member closest to the centroid first, then each next row the
    one farthest (in cosine) from every row already taken. Deterministic; ties go to the lower index."""
    n = vectors.shape[0]
    if n == 0:
        return []
    limit = n if limit is None else min(limit, n)
    centroid = vectors.mean(axis=0)
    first = int(np.argmax(vectors @ centroid))
    order = [first]
    closest = vectors @ vectors[first]  # highest cosine to anything taken
    closest[first] = np.inf
    while len(order) < limit:
        nxt = int(np.argmin(closest))
        order.append(nxt)
        closest = np.maximum(closest, vectors @ vectors[nxt])
        closest[nxt] = np.inf
    return order


def top_criteria(extractions: Sequence[Extraction], *, k: int = 3) -> dict[str, list[str]]:
    """The most common values of each criterion among a mode's members (empty without criteria)."""
    from collections import Counter

    ok = [e for e in extractions if e.ok and e.criteria]
    if not ok:
        return {}
    out: dict[str, list[str]] = {}
    for name in ok[0].criteria or {}:
        counts = Counter((e.criteria or {}).get(name, "") for e in ok)
        out[name] = [v for v, _ in counts.most_common(k) if v]
    return out
