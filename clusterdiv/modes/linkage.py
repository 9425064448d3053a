"""Exact average linkage from cluster means, in O(m*d) memory (no distance matrix).

For unit vectors the average cosine distance between the members of clusters A and B is
`1 - mean_A . mean_B` (means not renormalised), and after a merge the new mean is the size-weighted
mean of the two. So average linkage needs only each cluster's mean and size, never the m^2
matrix that scipy and scikit-learn hold (5,000 points: 100 MB; 50,000: 10 GB).

The merges are found in rounds (reciprocal agglomerative clustering, Sumengen et al., 2021):
average linkage is reducible (`d(A u B, C) >= min(d(A, C), d(B, C))`), so every pair of clusters
that are each other's nearest neighbour can be merged in the same round and the dendrogram is the
one the sequential algorithm builds; a cluster whose nearest neighbour is already at or past the
threshold can never merge below it again and is retired; and a cluster whose nearest neighbour
was not merged keeps it, so after the first round only the clusters touched by a merge are searched
again. The searches are blocked matrix products in float32, with the near-best candidates of each
row (within float32's error bound) re-scored in float64 so the chosen neighbour and the threshold
test are those of an exact float64 computation, as scipy's.
"""

from __future__ import annotations

import numpy as np

_EPS32 = float(np.finfo(np.float32).eps)


def _nearest(rows: np.ndarray, act: np.ndarray, mean64: np.ndarray, act32: np.ndarray, margin: float,
             block: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest active cluster (global index) and its distance for each of `rows`, exact in float64."""
    nn = np.empty(rows.size, dtype=np.int64)
    nnd = np.empty(rows.size, dtype=np.float64)
    pos = np.searchsorted(act, rows)  # rows are active, so they sit at these positions of `act`
    for start in range(0, rows.size, block):
        r = rows[start : start + block]
        b = r.size
        sim = mean64[r].astype(np.float32) @ act32.T
        sim[np.arange(b), pos[start : start + block]] = -np.inf
        best = sim.max(axis=1)
        ri, ci = np.nonzero(sim >= (best - margin)[:, None])  # near-best candidates, row-major order
        exact = np.einsum("ij,ij->i", mean64[r[ri]], mean64[act[ci]])
        # per row: the largest exact similarity, ties to the lowest index (candidates are in index order)
        order = np.lexsort((ci, -exact, ri))
        first = order[np.r_[True, ri[order][1:] != ri[order][:-1]]]
        nn[start : start + b] = act[ci[first]]
        nnd[start : start + b] = 1.0 - exact[first]
    return nn, nnd


def average_linkage(M: np.ndarray, w: np.ndarray | None, threshold: float, *, block: int = 1024) -> np.ndarray:
    """Exact (size-weighted) average linkage of the m rows of `M`, cut below cosine distance `threshold`.

    `M` holds unit vectors, or the mean member vector of groups of unit vectors with `w` their sizes.
    Returns labels 0.. (by first occurrence). Two clusters merge while their average member distance
    is below `threshold`, as with scikit-learn's `distance_threshold`.
    """
    m = int(M.shape[0])
    if m < 2:
        return np.zeros(m, dtype=np.int64)
    mean = np.array(M, dtype=np.float64)
    if w is None:  # points: normalise in float64, as scipy's cosine distance does
        norms = np.linalg.norm(mean, axis=1, keepdims=True)
        mean /= np.where(norms > 0, norms, 1.0)
    size = np.ones(m) if w is None else np.asarray(w, dtype=np.float64).copy()
    margin = 4.0 * (M.shape[1] + 4) * _EPS32 * float(np.max(np.linalg.norm(mean, axis=1))) ** 2
    parent = np.arange(m)
    alive = np.ones(m, dtype=bool)
    nn = np.full(m, -1, dtype=np.int64)
    nnd = np.full(m, np.inf)
    dirty = np.arange(m)
    while True:
        act = np.flatnonzero(alive)
        if act.size < 2:
            break
        if dirty.size:
            nn[dirty], nnd[dirty] = _nearest(dirty, act, mean, mean[act].astype(np.float32), margin, block)
        far = act[nnd[act] >= threshold]
        alive[far] = False  # never merges below the threshold again (average linkage only grows distances)
        act = act[nnd[act] < threshold]
        if act.size < 2:
            break
        a = act[(nn[nn[act]] == act) & (act < nn[act])]  # reciprocal nearest neighbours
        b = nn[a]
        sa, sb = size[a][:, None], size[b][:, None]
        mean[a] = (sa * mean[a] + sb * mean[b]) / (sa + sb)
        size[a] += size[b]
        alive[b] = False
        parent[b] = a
        touched = np.zeros(m, dtype=bool)
        touched[a] = touched[b] = True
        act = np.flatnonzero(alive)
        dirty = act[touched[nn[act]] | touched[act]]  # the merged, and those whose neighbour was merged
    return labels_from_parents(parent)


def labels_from_parents(parent: np.ndarray) -> np.ndarray:
    """Cluster labels from a merge forest (`parent[i]` = the cluster `i` was merged into, or `i`).

    Labels are numbered in order of each cluster's first member, so the same partition always gets
    the same labels, whichever member a merge kept as the root.
    """
    roots = parent.copy()
    while True:
        nxt = parent[roots]
        if np.array_equal(nxt, roots):
            break
        roots = nxt
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.reshape(-1)]
