"""2-D coordinates for the explorer's map, from the same criteria embeddings that were clustered.

UMAP (cosine, seeded `random_state`, which makes it single-threaded and reproducible) keeps local
neighbourhoods, so a cluster is drawn as one island and near modes sit side by side. Below
`UMAP_MIN_POINTS` its k-NN graph has too few points to mean anything (and its spectral start can
fail outright), so tiny sets get PCA, which is exact and deterministic.

Criteria embeddings repeat a lot (many examples get exactly "intent: play music; topic: music"),
and exact duplicates distort UMAP's neighbour graph: a mode of identical vectors gets smeared over
the map. So the layout is fitted on the distinct vectors only, and the copies of one vector are
drawn as a small deterministic spiral around its position: together, and countable.

The map is only a picture: every number on the page comes from the clustering, never from these
coordinates.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

UMAP_MIN_POINTS = 15  # distinct vectors
DECIMALS = 4  # enough for a plot; keeps the page small and the JSON stable
SPIRAL_STEP = 0.006  # duplicate spacing, as a share of the map's extent
GOLDEN_ANGLE = np.pi * (3 - np.sqrt(5))

LayoutMethod = Literal["umap", "pca", "trivial"]


def _pca(X: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    n_components = min(2, X.shape[0], X.shape[1])
    coords = PCA(n_components=n_components, svd_solver="full").fit_transform(X)
    if n_components < 2:
        coords = np.hstack([coords, np.zeros((X.shape[0], 2 - n_components))])
    return coords


def _umap(X: np.ndarray, seed: int) -> np.ndarray:
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs overridden by random_state: that is what we want
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, X.shape[0] - 1), metric="cosine",
                            random_state=seed, n_jobs=1)
        return reducer.fit_transform(X)


def _fit(unique: np.ndarray, seed: int) -> tuple[np.ndarray, LayoutMethod]:
    n = unique.shape[0]
    if n < 2:
        return np.zeros((n, 2)), "trivial"
    if n < UMAP_MIN_POINTS:
        return _pca(unique), "pca"
    coords = _umap(unique, seed)
    if not np.isfinite(coords).all():  # a degenerate graph: say so through `method`, never plot NaN
        return _pca(unique), "pca"
    return coords, "umap"


def _spread_duplicates(coords: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Copy k of a vector goes to radius step*sqrt(k) at k golden angles (copy 0 stays in place)."""
    extent = float(np.ptp(coords, axis=0).max()) if coords.shape[0] > 1 else 0.0
    step = SPIRAL_STEP * (extent if extent > 0 else 1.0)
    seen: dict[int, int] = {}
    out = np.empty((inverse.shape[0], 2))
    for row, u in enumerate(inverse.tolist()):
        k = seen.get(u, 0)
        seen[u] = k + 1
        radius, angle = step * np.sqrt(k), k * GOLDEN_ANGLE
        out[row] = coords[u] + radius * np.array([np.cos(angle), np.sin(angle)])
    return out


def layout_2d(vectors: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, LayoutMethod]:
    """(n x 2 coordinates, method used); row order follows `vectors`, and so does the spiral order."""
    X = np.asarray(vectors, dtype=np.float64)
    if X.shape[0] == 0:
        return np.zeros((0, 2)), "trivial"
    unique, inverse = np.unique(X, axis=0, return_inverse=True)
    coords, method = _fit(unique, seed)
    spread = _spread_duplicates(np.asarray(coords, dtype=np.float64), inverse.reshape(-1))
    return np.round(spread, DECIMALS) + 0.0, method  # + 0.0 turns -0.0 into 0.0
