"""The mode space the actions work in: the stages of `score`, batch alone or batch + reference together.

Both are one `modespace.build_mode_space` (with a reference the two sets are clustered together, as
for the report's `cluster_shares` and the explorer), so "mode 7 is 12% of real data but 1% of the batch"
is about one mode. Vectors are unit norm (cosine = dot product).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.progress import ProgressReporter
from clusterdiv.core.records import Example, Extraction
from clusterdiv.reports.sections import ClusterShares

REF_PREFIX = "ref:"


@dataclass
class ModeArrays:
    """`modespace.ModeSpace` as the arrays the actions index: every clustered example (batch first,
    then reference ids prefixed `ref:`) with its vector and mode."""

    ids: list[str]
    vectors: np.ndarray
    labels: np.ndarray
    is_batch: np.ndarray
    extractions: dict[str, Extraction]
    summaries: dict[int, str]
    method: str
    n_clusters: int
    names: dict[int, str] = field(default_factory=dict)  # mode -> its extractive name (modes.names)
    shares: dict[int, dict] = field(default_factory=dict)  # mode -> ClusterShare dump (with a reference)
    section: ClusterShares | None = None  # the report's `cluster_shares` section of these rows (with a reference)

    def batch_index(self) -> dict[str, int]:
        return {i: k for k, i in enumerate(self.ids) if self.is_batch[k]}

    def reference_index(self) -> dict[str, int]:
        return {i[len(REF_PREFIX):]: k for k, i in enumerate(self.ids) if not self.is_batch[k]}


def build_space(examples: Sequence[Example], reference: Sequence[Example] | None, *, config: object,
                cache: ModelCache, embedder: object = None,
                progress: ProgressReporter | None = None) -> ModeArrays:
    """The arrays the actions index, read off `modespace.build_mode_space` of the batch (and the reference).

    Extraction (only for LLM representations), representation and clustering are the mode space's,
    in a `RunContext` over the caller's cache; shares per mode with a reference, flagged by the test of
    `modes.shares` at `config.alpha` (the report's flags: seeds, select and assignments read these).
    """
    from clusterdiv.modes.config import ScoreConfig
    from clusterdiv.modes.embed import Embedder
    from clusterdiv.modes.modespace import BATCH, REFERENCE, build_mode_space
    from clusterdiv.modes.run import RunContext
    from clusterdiv.modes.shares import cluster_shares, shares_section
    from clusterdiv.tasks.score import reference_key

    assert isinstance(config, ScoreConfig)
    groups = {BATCH: examples, **({REFERENCE: reference} if reference is not None else {})}
    with RunContext(cache=cache, progress=progress) as run:
        if isinstance(embedder, Embedder):
            run.use_embedder(config.embedding_model, embedder)
        modes = build_mode_space(groups, config, run, timed=False)
    summaries = {c.cluster_id: c.criteria_summary for c in modes.summaries(key=reference_key)}
    rows = modes.clustered()
    ids = [reference_key(r) for r in rows]
    is_batch = np.array([r.group == BATCH for r in rows], dtype=bool)
    labels = np.array(modes.labels(), dtype=np.int64)
    space = ModeArrays(ids=ids, vectors=modes.vectors(), labels=labels, is_batch=is_batch,
                      extractions={e.example_id: e for e in modes.extractions(reference_key)}, summaries=summaries,
                      method=modes.clustering.method, n_clusters=modes.clustering.n_clusters,
                      names={c: n.name for c, n in modes.names().items()})
    if reference is not None:
        shares = cluster_shares(labels.tolist(), is_batch.tolist(), ids, summaries=summaries, alpha=config.alpha,
                                names=space.names)
        space.shares = {r.cluster_id: r.model_dump(mode="json") for r in shares}
        space.section = shares_section(shares, method=space.method, n_batch=int(is_batch.sum()),
                                       n_reference=int((~is_batch).sum()), n_clusters=space.n_clusters,
                                       alpha=config.alpha)
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
