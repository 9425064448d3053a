"""Clustering of criteria embeddings into semantic modes.

Two methods, both deterministic:

* **agglomerative** (the default, at every size): average linkage on cosine distance with a fixed
  threshold, so two examples share a mode when their criteria are about as close as paraphrases of
  one intent. The threshold does not depend on the sample, which is what a diversity count needs:
  the same modes are found in a small and a large sample. Up to `agglomerative_max_n` examples
  the linkage is exact (no seed involved). Above it the same mode definition is applied at scale
  (`sampled_average_linkage`): up to 4 x `agglomerative_max_n` points the linkage is still exact, run
  from cluster means and sizes (`clusterdiv.modes.linkage`, O(n*d) memory, the same labels as
  scikit-learn's); beyond, up to `_GRAPH_MAX_N` points, they are first linked along their k-NN
  graph (`clusterdiv.modes.knn_linkage`, exact average distances, only between clusters sharing an
  edge), and above that grouped at the tightest of a few tighter thresholds that leaves few enough
  groups (exact linkage on seeded samples, every other point joining the sample group whose
  *average* cosine distance to it is below that threshold); then the clusters or groups are linked
  exactly, weighted by size, so every merge uses the true average
  distance between all members. Memory O(n*k), deterministic under the seed; the method reported
  is still `agglomerative` (`Clustering.sampled` gives the sample cap).
* **umap_hdbscan** (only when asked for by name): UMAP (cosine, `random_state` = seed, which makes
  it single-threaded and exactly reproducible) to a few dimensions, then HDBSCAN, which finds dense
  modes without being told how many. Never switched to silently.

Why agglomerative is the default: on the validation harness (eval/RESULTS.md) the fixed-threshold
count tracked the true number of intents with Spearman 0.98 on both datasets, against 0.47-0.62 for
UMAP + HDBSCAN, whose excess-of-mass selection merges or splits modes depending on the density of
everything else in the sample. How far the grouped form agrees with exact linkage, by how much it
has to compress, is measured on real embeddings in eval/results/bench_cluster_scale.md.

HDBSCAN marks points that belong to no dense mode as noise (label -1). Noise points are kept, not
dropped: the score counts each as a mode of its own (an example unlike all others adds diversity).
Agglomerative clustering has no noise; an isolated example is a cluster of one.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from clusterdiv.core.records import MIN_TO_CLUSTER

NOISE = -1


class ClusterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["auto", "umap_hdbscan", "agglomerative"] = "auto"
    agglomerative_max_n: int = Field(default=5000, ge=3)
    umap_components: int = Field(default=5, ge=2)
    umap_neighbors: int = Field(default=15, ge=2)
    umap_min_dist: float = Field(default=0.0, ge=0.0)
    min_cluster_size: int = Field(default=3, ge=2)
    min_samples: int = Field(default=3, ge=1)
    cluster_selection_method: Literal["eom", "leaf"] = "eom"
    distance_threshold: float | None = Field(
        default=None, gt=0.0, lt=2.0,
        description="cosine distance at which agglomerative stops merging; None = the validated default "
                    "of the representation being clustered (clusterdiv.modes.represent.DEFAULT_THRESHOLDS)")

    def for_representation(self, kind: str) -> ClusterParams:
        """These settings with an unset threshold filled in for vectors of representation `kind`."""
        if self.distance_threshold is not None:
            return self
        from clusterdiv.modes.represent import DEFAULT_THRESHOLDS

        return self.model_copy(update={"distance_threshold": DEFAULT_THRESHOLDS[kind]})


class Clustering(BaseModel):
    """Labels per input row (NOISE = -1) and how they were obtained."""

    labels: list[int]
    method: Literal["umap_hdbscan", "agglomerative", "trivial"]
    n_clusters: int
    n_noise: int
    reduced: list[list[float]] | None = Field(default=None, repr=False)
    sampled: int | None = Field(default=None, description="None = exact average linkage of all points; else "
                                "the limit (`agglomerative_max_n`) whose excess sent the clustering to the scalable "
                                "path (`sampled_average_linkage`: k-NN-graph linkage up to 1,000,000 points, "
                                "seeded sample grouping above), which approximates it")


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids ordered by size (0 = largest, ties by first occurrence) so ids are stable and readable."""
    labels = np.asarray(labels, dtype=int)
    ids, first, inverse, sizes = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    keep = ids != NOISE
    order = np.lexsort((first[keep], -sizes[keep]))  # by size, ties by first occurrence
    new_id = np.full(ids.size, NOISE, dtype=int)
    new_id[np.flatnonzero(keep)[order]] = np.arange(order.size)
    return new_id[inverse.reshape(-1)]


def _threshold(params: ClusterParams) -> float:
    if params.distance_threshold is None:
        from clusterdiv.modes.represent import DEFAULT_KIND

        params = params.for_representation(DEFAULT_KIND)
    assert params.distance_threshold is not None
    return float(params.distance_threshold)


def _exact_average_linkage(X: np.ndarray, threshold: float) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    if X.shape[0] < 2:
        return np.zeros(X.shape[0], dtype=int)
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, metric="cosine", linkage="average")
    return model.fit_predict(X)


def _agglomerative(X: np.ndarray, params: ClusterParams) -> np.ndarray:
    return _exact_average_linkage(X, _threshold(params))


def _weighted_average_linkage(M: np.ndarray, w: np.ndarray, threshold: float) -> np.ndarray:
    """Exact average linkage (UPGMA) of groups (means `M` of unit vectors, sizes `w`), cut below `threshold`.

    From the means alone, O(m*d) memory (`clusterdiv.modes.linkage`); with singleton groups this is the
    same clustering as scikit-learn's average linkage.
    """
    from clusterdiv.modes.linkage import average_linkage

    return average_linkage(M, w, threshold)


def _group_means(M: np.ndarray, w: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = int(labels.max()) + 1
    sums = np.zeros((k, M.shape[1]), dtype=np.float64)
    for start in range(0, M.shape[0], 16384):  # in chunks: no float64 copy of all n vectors
        part = slice(start, start + 16384)
        np.add.at(sums, labels[part], M[part] * w[part, None])
    sizes = np.bincount(labels, weights=w, minlength=k)
    return (sums / sizes[:, None]).astype(np.float32), sizes


def _sample_and_assign(M: np.ndarray, w: np.ndarray, threshold: float, cap: int, rng: np.random.Generator,
                       chunk: int = 8192) -> np.ndarray:
    """Groups of the m weighted points (means `M`, sizes `w`) at average distance `threshold`, m > cap allowed.

    Each round: exact weighted average linkage on a seeded sample of `cap` of the points still
    unassigned; every other one joins the sample cluster with the smallest average member distance
    (`1 - x . mean`), when it is below `threshold`; the rest go to the next round. The last round
    (at most `cap` left) is exact.
    """
    m = int(M.shape[0])
    labels = np.full(m, -1, dtype=np.int64)
    remaining = np.arange(m)
    next_label = 0
    while remaining.size:
        if remaining.size <= cap:
            labels[remaining] = _weighted_average_linkage(M[remaining], w[remaining], threshold) + next_label
            break
        # the largest groups first (they carry the structure; ties in seeded random order), points at random
        order = np.lexsort((rng.permutation(remaining.size), -w[remaining]))
        pick = np.sort(order[:cap])
        sample = remaining[pick]
        local = _weighted_average_linkage(M[sample], w[sample], threshold)
        labels[sample] = local + next_label
        means, _ = _group_means(M[sample], w[sample], local)
        rest = np.delete(remaining, pick)
        unassigned = []
        for start in range(0, rest.size, chunk):
            idx = rest[start : start + chunk]
            sim = M[idx] @ means.T
            best = np.argmax(sim, axis=1)
            ok = (1.0 - sim[np.arange(idx.size), best]) < threshold
            labels[idx[ok]] = best[ok] + next_label
            unassigned.append(idx[~ok])
        next_label += int(local.max()) + 1
        remaining = np.concatenate(unassigned)
    return labels


# Neighbours per point in the k-NN graph along which clusters may merge above the exact limit.
# Chosen on CLINC150 vectors (eval/bench_cluster_scale.py).
_KNN = 20
# Up to this many points the k-NN graph linkage is used (measured up to here: 1,000,000 vectors in
# about 3.5 minutes on 2 shared cores, peak RSS under 3 GB, eval/bench_cluster_scale.md); above, where it
# was not measured, the points are grouped at `_LEVELS` instead (less faithful, same document).
_GRAPH_MAX_N = 1_000_000
# Thresholds (as fractions of the final one) at which points are first grouped above `_GRAPH_MAX_N`:
# average linkage merges in order of distance, so tight groups come first, and the grouping stops at
# the tightest level that leaves few enough groups. Chosen on CLINC150 vectors.
_LEVELS = (0.35, 0.5, 0.6, 0.7, 0.8)
# The final exact linkage takes up to this many times `sample_size` clusters: it works from cluster
# means (O(m*d) memory), so only its time, O(m^2*d), bounds it.
_GROUP_LIMIT = 4


def linkage_path(n: int, *, sample_size: int, graph_max_n: int | None = None) -> Literal["exact", "graph", "levels"]:
    """Which of `sampled_average_linkage`'s paths `n` points take: the one rule behind its dispatch,
    `Clustering.sampled` (None where the linkage is exact) and the benchmark's per-size path column."""
    if n <= _GROUP_LIMIT * sample_size:
        return "exact"
    return "graph" if n <= (graph_max_n or _GRAPH_MAX_N) else "levels"


def sampled_average_linkage(X: np.ndarray, *, threshold: float, sample_size: int, seed: int = 0,
                            knn: int | None = None, graph_max_n: int | None = None) -> np.ndarray:
    """Average-linkage modes at cosine distance `threshold` for any n, in O(n*k) memory.

    Exact average linkage of all points costs O(n^2) time. Up to `_GROUP_LIMIT * sample_size`
    points it is run exactly (from means and sizes). Above, up to `_GRAPH_MAX_N` points, they are
    first linked along their k-NN graph (`clusterdiv.modes.knn_linkage`: the same average-distance
    merges, only between clusters that share a graph edge); beyond, they are grouped at the tightest
    of `_LEVELS` x `threshold` that leaves few enough groups (`_sample_and_assign`: exact linkage on
    seeded samples, the rest joining the sample group whose average distance is below the level).
    Either way the clusters are then linked exactly from their means and sizes (which also catches
    any merge the graph missed) and cut at `threshold`; only when they are still more than
    `_GROUP_LIMIT * sample_size` is that step `_sample_and_assign` at `threshold`. Deterministic
    for a given seed.
    """
    n = int(X.shape[0])
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if not np.allclose(norms, 1.0, atol=1e-4):  # unit vectors (the embedder's) are used in place: no copy
        X = X / np.where(norms > 0, norms, 1.0)
    rng = np.random.default_rng(seed)
    limit = _GROUP_LIMIT * sample_size
    point_group = np.arange(n)
    M, w = X, np.ones(n, dtype=np.float64)
    if linkage_path(n, sample_size=sample_size, graph_max_n=graph_max_n) == "graph":
        from clusterdiv.modes.knn_linkage import graph_average_linkage, knn_graph

        point_group = graph_average_linkage(X, knn_graph(X, knn or _KNN, seed), threshold)
        M, w = _group_means(M, w, point_group)
    else:
        for level in _LEVELS:
            if M.shape[0] <= limit:
                break
            grouped = _sample_and_assign(M, w, level * threshold, sample_size, rng)
            point_group = grouped[point_group]
            M, w = _group_means(M, w, grouped)
    if M.shape[0] <= limit:
        final = _weighted_average_linkage(M, w, threshold)
    else:
        final = _sample_and_assign(M, w, threshold, sample_size, rng)
    return final[point_group]


def _umap_hdbscan(X: np.ndarray, params: ClusterParams, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import hdbscan
    import umap

    n = X.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs overridden by random_state: that is what we want
        reducer = umap.UMAP(
            n_components=min(params.umap_components, n - 2),
            n_neighbors=min(params.umap_neighbors, n - 1),
            min_dist=params.umap_min_dist,
            metric="cosine",
            random_state=seed,
            n_jobs=1,
        )
        reduced = reducer.fit_transform(X)
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=params.min_cluster_size,
        min_samples=params.min_samples,
        cluster_selection_method=params.cluster_selection_method,
    )
    return clusterer.fit_predict(reduced), reduced


def cluster_vectors(X: np.ndarray, *, params: ClusterParams | None = None, seed: int = 0,
                    keep_reduced: bool = False) -> Clustering:
    params = params or ClusterParams()
    n = int(X.shape[0])
    sampled: int | None = None
    if n == 0:
        return Clustering(labels=[], method="trivial", n_clusters=0, n_noise=0)
    if n < MIN_TO_CLUSTER:
        labels = _agglomerative(X, params) if n == 2 else np.zeros(1, dtype=int)
        method: Literal["umap_hdbscan", "agglomerative", "trivial"] = "trivial"
        reduced = None
    else:
        if params.method == "umap_hdbscan":
            labels, reduced = _umap_hdbscan(X, params, seed)
            method = "umap_hdbscan"
        elif n > params.agglomerative_max_n:  # same modes, exact linkage on a seeded sample
            labels = sampled_average_linkage(X, threshold=_threshold(params),
                                             sample_size=params.agglomerative_max_n, seed=seed)
            exact = linkage_path(n, sample_size=params.agglomerative_max_n) == "exact"  # no sample involved
            reduced, method, sampled = None, "agglomerative", None if exact else params.agglomerative_max_n
        else:
            labels, reduced, method = _agglomerative(X, params), None, "agglomerative"
    labels = _relabel_by_size(np.asarray(labels))
    return Clustering(
        labels=labels.tolist(),
        method=method,
        n_clusters=len(set(labels.tolist()) - {NOISE}),
        n_noise=int((labels == NOISE).sum()),
        reduced=reduced.tolist() if (keep_reduced and reduced is not None) else None,
        sampled=sampled,
    )
