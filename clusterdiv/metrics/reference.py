"""Metrics against a reference set: MAUVE, k-NN precision/recall, density/coverage.

These answer "does the generated set cover the real distribution, and stay inside it", which a
reference-free diversity number cannot: a set can be diverse and still miss or leave the target.
All take precomputed feature arrays (rows = examples); "real" is the reference set, "fake" the set
being evaluated. The ``mauve`` package imports torch when present, so it is imported only inside
:func:`mauve_score`, never when this module is imported.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "DensityCoverage",
    "PrecisionRecall",
    "density_coverage",
    "knn_precision_recall",
    "kth_neighbour_radii",
    "mauve_score",
]


class PrecisionRecall(BaseModel):
    """k-NN precision (fidelity) and recall (coverage of the real manifold), both in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    precision: float
    recall: float
    k: int


class DensityCoverage(BaseModel):
    """Density (can exceed 1; 1 ~ fake as dense as real around real points) and coverage in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    density: float
    coverage: float
    k: int


def _features(X: np.ndarray, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, d), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def _check_pair(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    real, fake = _features(real, "real"), _features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {real.shape[1]} vs {fake.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return real, fake


def kth_neighbour_radii(X: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest *other* row (the radius of its k-NN ball).

    Exact (``algorithm="brute"``: no tree/approximate search). Like ``prdc``, distances are float64
    via the Gram identity, so a radius of exactly 0 (k or more duplicate rows) can come out as
    ~1e-8; membership tests treat anything within ``TIE_TOLERANCE`` of a radius as on the edge.
    """
    if X.shape[0] <= k:
        raise ValueError(f"k={k} needs more than k rows in each set, got {X.shape[0]}")
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X)
    distances, _ = nn.kneighbors()  # X=None: each row's neighbours exclude itself
    return distances[:, -1]


TIE_TOLERANCE = 1e-6
"""A row this close to a ball's radius counts as on its edge, i.e. outside (the strict ``<``).

Why: a radius and a cross distance come from different matrix products, so a point exactly on an
edge (a text in both sets, or at the same distance from a real row as that row's k-th neighbour)
lands inside or outside by the last bit of a BLAS sum, and the same input gave density 1.1 on one
machine and 1.075 on another. Embedding distances lie in [0, 2]; 1e-6 is far above that rounding
and far below any real difference between two texts.
"""


def _cross_distances(real: np.ndarray, fake: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Blocks of the real x fake Euclidean distance matrix, with the first real row of each block.

    Chunked so memory stays bounded (sklearn's working-memory budget) while results stay exact.
    """
    start = 0
    for block in pairwise_distances_chunked(real, fake, metric="euclidean", n_jobs=None):
        yield start, block
        start += block.shape[0]


def knn_precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 5) -> PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019), exact.

    Precision = share of fake rows inside at least one real row's k-NN ball; recall = share of real
    rows inside at least one fake row's k-NN ball. "Inside" is a strict ``<`` as in the authors'
    and Naeem et al.'s ``prdc`` code, with ties within ``TIE_TOLERANCE`` outside. O(n_real * n_fake)
    distances, computed in chunks.
    """
    real, fake = _check_pair(real, fake, k)
    real_radii, fake_radii = kth_neighbour_radii(real, k), kth_neighbour_radii(fake, k)
    fake_in_real_ball = np.zeros(fake.shape[0], dtype=bool)
    real_in_fake_ball = np.zeros(real.shape[0], dtype=bool)
    for start, block in _cross_distances(real, fake):
        rows = slice(start, start + block.shape[0])
        fake_in_real_ball |= (block < real_radii[rows, None] - TIE_TOLERANCE).any(axis=0)
        real_in_fake_ball[rows] = (block < fake_radii[None, :] - TIE_TOLERANCE).any(axis=1)
    return PrecisionRecall(
        precision=float(fake_in_real_ball.mean()), recall=float(real_in_fake_ball.mean()), k=k
    )


def density_coverage(real: np.ndarray, fake: np.ndarray, *, k: int = 5) -> DensityCoverage:
    """Density and coverage (Naeem et al. 2020), exact.

    Density = (1 / (k * n_fake)) * number of (real ball, fake row) memberships: unlike precision it
    counts how many real balls hold each fake row, so it is not fooled by a few outlying real
    points with huge balls. Coverage = share of real rows whose k-NN ball holds at least one fake
    row: a recall that is robust to fake outliers. Strict ``<`` as in ``prdc``, ties within
    ``TIE_TOLERANCE`` outside.
    """
    real, fake = _check_pair(real, fake, k)
    real_radii = kth_neighbour_radii(real, k)
    memberships = 0
    covered = np.zeros(real.shape[0], dtype=bool)
    for start, block in _cross_distances(real, fake):
        inside = block < real_radii[start : start + block.shape[0], None] - TIE_TOLERANCE
        memberships += int(inside.sum())
        covered[start : start + block.shape[0]] = inside.any(axis=1)
    return DensityCoverage(density=memberships / (k * fake.shape[0]), coverage=float(covered.mean()), k=k)


def mauve_score(
    p_features: np.ndarray,
    q_features: np.ndarray,
    *,
    seed: int = 0,
    num_buckets: int | str = "auto",
    kmeans_num_redo: int = 5,
    kmeans_max_iter: int = 500,
    mauve_scaling_factor: float = 5,
) -> float:
    """MAUVE (Pillutla et al. 2021) between reference features ``p`` and evaluated features ``q``.

    A thin wrapper over ``mauve.compute_mauve`` on precomputed features: with features given it
    never tokenises or loads a model, so it works offline. ``num_buckets="auto"`` is the package's
    rule, max(2, round(min(n_p, n_q) / 10)) k-means clusters, which keeps ~10 points per bucket
    on small sets instead of a fixed count that would leave most buckets empty. MAUVE is
    noisy on a few hundred points and depends on ``seed`` (k-means init); report it with the seed.
    """
    p, q = _features(p_features, "p_features"), _features(q_features, "q_features")
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"p and q features differ in dimension: {p.shape[1]} vs {q.shape[1]}")
    try:
        import mauve  # noqa: PLC0415 - heavy (imports torch if installed); only when asked for
    except ImportError as exc:
        raise ImportError(
            "MAUVE needs the 'mauve-text' package (and faiss-cpu): pip install 'mauve-text==0.4.0'"
        ) from exc
    out = mauve.compute_mauve(
        p_features=p,
        q_features=q,
        num_buckets=num_buckets,
        kmeans_num_redo=kmeans_num_redo,
        kmeans_max_iter=kmeans_max_iter,
        mauve_scaling_factor=mauve_scaling_factor,
        # faiss takes a C int seed (and mauve adds 1 for its PCA): fold any accepted seed into that range
        seed=seed % (2**31 - 1),
        verbose=False,
    )
    return float(out.mauve)
