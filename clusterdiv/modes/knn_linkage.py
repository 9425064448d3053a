"""Average linkage restricted to a k-nearest-neighbour graph, in O(n*k) memory and close to O(n*k*d) time.

Exact average linkage needs every pair of clusters; but at a fixed cut the merges it makes are
between clusters that are close, and close clusters have members among each other's nearest
neighbours. So here only pairs of clusters joined by an edge of the points' k-NN graph (a faiss
index: exact up to `_FLAT_MAX` points, an inverted-file index above) are candidates, while the
distance of each candidate pair is still the exact average member distance, `1 - mean_A . mean_B`
for unit vectors (so, as in `clusterdiv.modes.linkage`, only means and sizes are kept). Merges are
made in rounds of reciprocal nearest neighbours over the graph; after a merge the cluster's
edges are the union of its parts'. An edge at or past the cut is dropped: through it alone the
pair cannot merge below the cut. The graph can miss a pair that exact linkage would merge (no
member of one among the k nearest of a member of the other), so `cluster.sampled_average_linkage`
then links the resulting clusters exactly from their means and sizes, which merges any such pair.
"""

from __future__ import annotations

import numpy as np

from clusterdiv.core.errors import ClusterdivError
from clusterdiv.modes.linkage import labels_from_parents

_FLAT_MAX = 50_000  # up to here the k-NN graph is exact (brute force); above, an inverted-file index
_NPROBE = 8  # lists searched per query above _FLAT_MAX (of about 2*sqrt(n))


class KnnIndexError(ClusterdivError):
    """The k-NN index library (faiss) is missing."""


def knn_graph(X: np.ndarray, k: int, seed: int = 0, chunk: int = 65_536) -> np.ndarray:
    """The k nearest neighbours (by inner product, i.e. cosine for unit vectors) of each row, -1 padded."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise KnnIndexError("average linkage above 4 x agglomerative_max_n needs faiss-cpu") from exc
    n, d = X.shape
    k = min(k + 1, n)  # each point finds itself too
    X = np.ascontiguousarray(X, dtype=np.float32)
    if n <= _FLAT_MAX:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(2 * np.sqrt(n))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.niter = 10
        train = np.random.default_rng(seed).choice(n, size=min(n, 40 * nlist), replace=False)
        index.train(X[np.sort(train)])
        index.nprobe = _NPROBE
    for start in range(0, n, chunk):
        index.add(X[start : start + chunk])
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        _, out[start : start + chunk] = index.search(X[start : start + chunk], k)
    del index
    return out


def _dots(mean: np.ndarray, u: np.ndarray, v: np.ndarray, chunk: int = 32_768) -> np.ndarray:
    sim = np.empty(u.size, dtype=np.float64)
    for start in range(0, u.size, chunk):
        a, b = u[start : start + chunk], v[start : start + chunk]
        sim[start : start + chunk] = np.einsum("ij,ij->i", mean[a].astype(np.float64), mean[b].astype(np.float64))
    return sim


def _edges(u: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges without loops or duplicates, as (low, high) pairs in sorted order."""
    keep = u != v
    lo, hi = np.minimum(u[keep], v[keep]), np.maximum(u[keep], v[keep])
    key = np.unique(lo * np.int64(n) + hi)
    return key // n, key % n


def _best_neighbours(u: np.ndarray, v: np.ndarray, sim: np.ndarray, n: int) -> np.ndarray:
    """For each node, its neighbour with the largest similarity (ties: lowest index); -1 without edges."""
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    s = np.concatenate([sim, sim])
    order = np.lexsort((dst, -s, src))  # per node: best first, ties to the lowest neighbour index
    src, dst = src[order], dst[order]
    first = np.r_[True, src[1:] != src[:-1]]
    nn = np.full(n, -1, dtype=np.int64)
    nn[src[first]] = dst[first]
    return nn


def graph_average_linkage(X: np.ndarray, neighbours: np.ndarray, threshold: float) -> np.ndarray:
    """Average-linkage clusters of unit vectors `X` below cosine distance `threshold`, merging only along
    the graph `neighbours` (row i: indices of i's neighbours, -1 = none). Labels 0.. by first occurrence.
    """
    n = int(X.shape[0])
    mean = np.array(X, dtype=np.float32)
    size = np.ones(n, dtype=np.float64)
    parent = np.arange(n)
    rows = np.repeat(np.arange(n, dtype=np.int64), neighbours.shape[1])
    cols = neighbours.reshape(-1).astype(np.int64)
    ok = cols >= 0
    u, v = _edges(rows[ok], cols[ok], n)
    del rows, cols, ok
    sim = _dots(mean, u, v)
    cut = 1.0 - threshold
    keep = sim > cut
    u, v, sim = u[keep], v[keep], sim[keep]
    while u.size:
        nn = _best_neighbours(u, v, sim, n)
        a = np.flatnonzero(nn >= 0)
        a = a[(nn[nn[a]] == a) & (a < nn[a])]  # reciprocal nearest neighbours (all below the cut)
        b = nn[a]
        sa, sb = size[a][:, None], size[b][:, None]
        mean[a] = ((sa * mean[a] + sb * mean[b]) / (sa + sb)).astype(np.float32)
        size[a] += size[b]
        parent[b] = a
        rep = np.arange(n)
        rep[b] = a
        merged = np.zeros(n, dtype=bool)
        merged[a] = True
        u, v = rep[u], rep[v]
        touched = merged[u] | merged[v]
        tu, tv = _edges(u[touched], v[touched], n)
        tsim = _dots(mean, tu, tv)
        keep = tsim > cut
        u = np.concatenate([u[~touched], tu[keep]])
        v = np.concatenate([v[~touched], tv[keep]])
        sim = np.concatenate([sim[~touched], tsim[keep]])
    return labels_from_parents(parent)
