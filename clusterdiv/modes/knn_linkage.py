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


def _search_order(index, n: int) -> np.ndarray:
    """The points list by list of the inverted file: consecutive queries then probe mostly the same lists,
    which stay in cache (at 200,000 points the search takes half the time; each query's result is unchanged)."""
    import faiss

    inv = index.invlists
    ids = [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).copy() for i in range(index.nlist)
           if inv.list_size(i)]
    order = np.concatenate(ids).astype(np.int64) if ids else np.arange(n)
    if order.size != n:  # pragma: no cover - every added point is in one list
        raise KnnIndexError("the inverted file lost points")
    return order


def knn_graph(X: np.ndarray, k: int, seed: int = 0, chunk: int = 65_536) -> np.ndarray:
    """The k nearest neighbours (by inner product, i.e. cosine for unit vectors) of each row, -1 padded (int32).

    Above `_FLAT_MAX` the index stores the vectors in float16 (`QT_fp16`: half the memory of a copy of
    `X`, at 1,000,000 points 0.7 GB instead of 1.5 GB; the neighbours are the same as float32's for
    all but about 1 in 10,000 entries, and the similarities along the graph are recomputed exactly
    from the vectors anyway).
    """
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
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_fp16,
                                              faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.niter = 10
        train = np.random.default_rng(seed).choice(n, size=min(n, 40 * nlist), replace=False)
        index.train(X[np.sort(train)])
        index.nprobe = _NPROBE
    for start in range(0, n, chunk):
        index.add(X[start : start + chunk])
    order = _search_order(index, n) if n > _FLAT_MAX else np.arange(n)
    out = np.empty((n, k), dtype=np.int32)
    for start in range(0, n, chunk):
        rows = order[start : start + chunk]
        _, out[rows] = index.search(X[rows], k)
    del index
    return out


class _Means:
    """Cluster means without a copy of the points: a singleton's mean is its (read-only) row of `X`,
    a merged cluster's is a row of a float32 store whose freed rows are reused, so the store holds
    at most as many rows as merged clusters alive at once (it is allocated lazily by the OS)."""

    def __init__(self, X: np.ndarray):
        n, d = X.shape
        self.X = X
        self.slot = np.full(n, -1, dtype=np.int64)
        self.store = np.empty((max(n // 2, 1), d), dtype=np.float32)  # pages are committed only when written
        self.free = np.empty(0, dtype=np.int64)
        self.top = 0

    def rows(self, ids: np.ndarray) -> np.ndarray:
        out = self.X[ids]
        s = self.slot[ids]
        m = s >= 0
        out[m] = self.store[s[m]]
        return out

    def merge(self, a: np.ndarray, b: np.ndarray, sa: np.ndarray, sb: np.ndarray, chunk: int = 32_768) -> None:
        """Clusters `b` merged into `a` (sizes `sa`, `sb`): `a`'s new mean, `b`'s row freed."""
        new = self.slot[a] < 0
        freed = self.slot[b][self.slot[b] >= 0]
        means = np.empty((a.size, self.X.shape[1]), dtype=np.float32)
        for start in range(0, a.size, chunk):  # b's rows are read before they are freed
            part = slice(start, start + chunk)
            wa, wb = sa[part][:, None], sb[part][:, None]
            ra, rb = self.rows(a[part]).astype(np.float64), self.rows(b[part]).astype(np.float64)
            means[part] = (wa * ra + wb * rb) / (wa + wb)
        self.slot[b] = -1
        pool = np.concatenate([self.free, freed])
        need = int(new.sum())
        take = min(need, pool.size)
        fresh = np.arange(self.top, self.top + need - take, dtype=np.int64)
        self.top += need - take
        self.slot[a[new]] = np.concatenate([pool[:take], fresh])
        self.free = pool[take:]
        if a.size:
            self.store[self.slot[a]] = means


def _dots(mean: _Means, u: np.ndarray, v: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Exact float64 dot products of the (float32) means; in small chunks, so the operands stay in cache."""
    sim = np.empty(u.size, dtype=np.float64)
    for start in range(0, u.size, chunk):
        a, b = u[start : start + chunk], v[start : start + chunk]
        sim[start : start + chunk] = np.einsum("ij,ij->i", mean.rows(a), mean.rows(b), dtype=np.float64)
    return sim


def _edges(u: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges without loops or duplicates, as (low, high) int32 pairs.

    Deduplicated in a sparse row matrix (a bucket sort by the low end, then a sort within each
    node's few edges) rather than by a global sort of all edges.
    """
    from scipy.sparse import coo_matrix

    keep = u != v
    u, v = u[keep], v[keep]
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    del u, v, keep
    m = coo_matrix((np.ones(lo.size, dtype=bool), (lo, hi)), shape=(n, n)).tocsr()
    del lo, hi
    m.sum_duplicates()
    lo = np.repeat(np.arange(n, dtype=np.int32), np.diff(m.indptr))
    return lo, m.indices.astype(np.int32, copy=False)


def _best_neighbours(u: np.ndarray, v: np.ndarray, sim: np.ndarray, n: int) -> np.ndarray:
    """For each node, its neighbour with the largest similarity (ties: lowest index); -1 without edges.

    The edges are grouped by node in a sparse row matrix (a bucket sort, O(E)), and the best of each
    row taken by reductions over its run: no global sort of the edges per merge round.
    """
    from scipy.sparse import csr_matrix

    both = csr_matrix((np.concatenate([sim, sim]), (np.concatenate([u, v]), np.concatenate([v, u]))), shape=(n, n))
    counts = np.diff(both.indptr)
    has = counts > 0
    starts = both.indptr[:-1][has]
    best = np.maximum.reduceat(both.data, starts)
    cand = np.where(both.data == np.repeat(best, counts[has]), both.indices, n)
    nn = np.full(n, -1, dtype=np.int64)
    nn[has] = np.minimum.reduceat(cand, starts)
    return nn


def graph_average_linkage(X: np.ndarray, neighbours: np.ndarray, threshold: float) -> np.ndarray:
    """Average-linkage clusters of unit vectors `X` below cosine distance `threshold`, merging only along
    the graph `neighbours` (row i: indices of i's neighbours, -1 = none). Labels 0.. by first occurrence.
    `X` is only read (merged clusters' means are kept apart, see `_Means`).
    """
    n = int(X.shape[0])
    mean = _Means(X)
    size = np.ones(n, dtype=np.float64)
    parent = np.arange(n)
    rows = np.repeat(np.arange(n, dtype=np.int32), neighbours.shape[1])
    cols = neighbours.reshape(-1).astype(np.int32)
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
        mean.merge(a, b, size[a], size[b])
        size[a] += size[b]
        parent[b] = a
        rep = np.arange(n, dtype=np.int32)
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
