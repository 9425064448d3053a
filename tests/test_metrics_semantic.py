"""Embedding metrics against independent computations: an explicit n x n cosine matrix and the
``vendi-score`` package."""

from __future__ import annotations

import math

import numpy as np
import pytest
from vendi_score import vendi

from clusterdiv.metrics.semantic import (
    mean_pairwise_cosine,
    mean_pairwise_cosine_bootstrap,
    vendi_normalized,
    vendi_permutation_p_value,
    vendi_score,
)

# vendi-score 0.0.3 touches the deprecated scipy.sparse.csr namespace on every call.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:vendi_score")


def brute_mean_cosine(X: np.ndarray) -> float:
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    total, pairs = 0.0, 0
    for i in range(n):
        for j in range(i + 1, n):
            total += float(X[i] @ X[j]) / (np.linalg.norm(X[i]) * np.linalg.norm(X[j]))
            pairs += 1
    return total / pairs


@pytest.mark.parametrize(("n", "d", "seed"), [(2, 3, 0), (17, 5, 1), (60, 40, 2), (40, 120, 3)])
def test_mean_pairwise_cosine_matches_all_pairs(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.normal(size=d)  # shared offset: mean cosine well above 0
    assert mean_pairwise_cosine(X) == pytest.approx(brute_mean_cosine(X), abs=1e-12)


def test_mean_pairwise_cosine_scale_invariant_and_float32():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 8))
    scaled = X * rng.uniform(0.1, 10, size=(30, 1))
    assert mean_pairwise_cosine(scaled) == pytest.approx(mean_pairwise_cosine(X), abs=1e-12)
    assert mean_pairwise_cosine(X.astype(np.float32)) == pytest.approx(brute_mean_cosine(X), abs=1e-6)


def test_mean_pairwise_cosine_extremes():
    assert mean_pairwise_cosine(np.tile([1.0, 2.0, 3.0], (5, 1))) == pytest.approx(1.0)
    assert mean_pairwise_cosine(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(-1.0)
    assert mean_pairwise_cosine(np.eye(6)) == pytest.approx(0.0, abs=1e-15)


def test_mean_pairwise_cosine_rejects_undefined_inputs():
    with pytest.raises(ValueError, match="at least two"):
        mean_pairwise_cosine(np.ones((1, 4)))
    with pytest.raises(ValueError, match="zeros"):
        mean_pairwise_cosine(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN"):
        mean_pairwise_cosine(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_bootstrap_replicate_equals_explicit_resample():
    rng_data = np.random.default_rng(5)
    X = rng_data.normal(size=(25, 6)) + 1.0
    replicate = mean_pairwise_cosine_bootstrap(X, replicates=1, rng=np.random.default_rng(9))[0]
    # Redraw the same resample and score it the long way: all position pairs of distinct rows.
    idx = np.random.default_rng(9).integers(0, 25, size=25)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    total, pairs = 0.0, 0
    for a in range(25):
        for b in range(25):
            if a != b and idx[a] != idx[b]:
                total += float(U[idx[a]] @ U[idx[b]])
                pairs += 1
    assert replicate == pytest.approx(total / pairs, abs=1e-12)


def test_bootstrap_is_centred_on_estimate():
    X = np.random.default_rng(6).normal(size=(300, 16)) + 0.5
    reps = mean_pairwise_cosine_bootstrap(X, replicates=300, rng=np.random.default_rng(0))
    estimate = mean_pairwise_cosine(X)
    lo, hi = np.percentile(reps, [2.5, 97.5])
    assert lo < estimate < hi
    assert abs(np.mean(reps) - estimate) < 0.25 * np.std(reps)


@pytest.mark.parametrize(("n", "d", "seed"), [(50, 8, 0), (8, 50, 1), (30, 30, 2), (200, 16, 3)])
@pytest.mark.parametrize("q", [1, 2, 0.5])
def test_vendi_matches_vendi_score_package(n, d, seed, q):
    X = np.random.default_rng(seed).normal(size=(n, d))
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    ours = vendi_score(X, q=q)
    if q >= 1 or n == d:
        assert ours == pytest.approx(vendi.score_dual(X, q=q), rel=1e-9)
        assert ours == pytest.approx(vendi.score_K(U @ U.T, q=q), rel=1e-9)
    else:
        # For q < 1 the package's two routines disagree on rank-deficient kernels: the larger
        # matrix has round-off eigenvalues ~1e-16 that each add p^q. Compare with the routine
        # that decomposes the smaller (full-rank) matrix, where no such eigenvalues exist.
        package = vendi.score_dual(X, q=q) if d < n else vendi.score_K(U @ U.T, q=q)
        assert ours == pytest.approx(package, rel=1e-9)


def test_vendi_infinite_order_matches_package():
    X = np.random.default_rng(7).normal(size=(40, 10))
    assert vendi_score(X, q=math.inf) == pytest.approx(vendi.score_dual(X, q="inf"), rel=1e-9)


def test_vendi_extremes():
    assert vendi_score(np.tile([0.3, -1.0, 2.0], (10, 1))) == pytest.approx(1.0)
    assert vendi_score(np.eye(7)) == pytest.approx(7.0)
    assert vendi_score(np.eye(7)[[0, 0, 1, 1, 2, 2]]) == pytest.approx(3.0)  # duplicates add nothing
    assert vendi_score(np.ones((1, 5))) == pytest.approx(1.0)


def _mixture(n: int, seed: int) -> np.ndarray:
    """n rows from one fixed mixture of 12 directions: the same diversity whatever n is."""
    centres = np.random.default_rng(99).normal(size=(12, 64))
    rng = np.random.default_rng(seed)
    return centres[rng.integers(0, 12, size=n)] + rng.normal(size=(n, 64))


def test_vendi_normalized_does_not_grow_with_the_batch_while_vendi_does():
    small, large = _mixture(120, seed=1), _mixture(1200, seed=2)
    raw_small, raw_large = vendi_score(small), vendi_score(large)
    norm_small, _ = vendi_normalized(small, 100, subsets=40, seed=0)
    norm_large, _ = vendi_normalized(large, 100, subsets=40, seed=0)
    assert raw_large > 1.15 * raw_small  # the raw effective count grows with the number of rows
    assert norm_large == pytest.approx(norm_small, rel=0.03)


def test_vendi_normalized_at_its_own_size_is_vendi_over_size_and_is_seeded():
    X = _mixture(100, seed=3)
    assert vendi_normalized(X, 100) == (pytest.approx(vendi_score(X) / 100, rel=1e-12), 0.0)
    Y = _mixture(300, seed=4)
    value, sd = vendi_normalized(Y, 100, seed=5)
    assert vendi_normalized(Y, 100, seed=5) == (value, sd) and sd > 0
    assert 1 / 100 <= value <= 1.0


def test_vendi_normalized_refuses_to_scale_a_smaller_batch_up():
    with pytest.raises(ValueError, match="fewer than the reference size 100"):
        vendi_normalized(_mixture(99, seed=6), 100)


def _brute_vendi_p(A: np.ndarray, B: np.ndarray, permutations: int, seed: int) -> float:
    """The same test written the slow way: one split at a time, each side through vendi_score."""
    pooled, na = np.vstack([A, B]), A.shape[0]
    observed = abs(vendi_score(A) - vendi_score(B))
    rng = np.random.default_rng(seed)
    extreme = 0
    for _ in range(permutations):
        mask = np.zeros(pooled.shape[0], dtype=bool)
        mask[rng.permutation(pooled.shape[0])[:na]] = True
        extreme += abs(vendi_score(pooled[mask]) - vendi_score(pooled[~mask])) >= observed - 1e-9
    return (1 + extreme) / (1 + permutations)


@pytest.mark.parametrize("d", [8, 64])  # 8: the d x d kernels (batches larger than d); 64: blocks of the Gram
def test_vendi_permutation_test_matches_a_split_by_split_computation(d):
    rng = np.random.default_rng(d)
    centres = rng.normal(size=(6, d))
    A = centres[rng.integers(0, 6, size=30)] + rng.normal(size=(30, d))
    B = centres[rng.integers(0, 2, size=30)] + rng.normal(size=(30, d))
    difference, p = vendi_permutation_p_value(A, B, permutations=60, seed=3, chunk=7)
    assert difference == pytest.approx(vendi_score(A) - vendi_score(B), rel=1e-12)
    assert p == pytest.approx(_brute_vendi_p(A, B, 60, 3))
    assert vendi_permutation_p_value(A, B, permutations=60, seed=3) == (difference, p)  # chunking changes nothing


def test_vendi_permutation_test_separates_a_collapsed_batch_and_not_two_draws_of_one_set():
    wide, other_wide = _mixture(120, seed=11), _mixture(120, seed=12)
    centres = np.random.default_rng(99).normal(size=(12, 64))
    rng = np.random.default_rng(13)
    collapsed = centres[rng.integers(0, 3, size=120)] + rng.normal(size=(120, 64))
    difference, p = vendi_permutation_p_value(wide, collapsed, permutations=200, seed=0)
    assert difference > 0 and p < 0.01
    _, p_same = vendi_permutation_p_value(wide, other_wide, permutations=200, seed=0)
    assert p_same > 0.05


def test_vendi_permutation_test_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="dimensions differ"):
        vendi_permutation_p_value(np.ones((3, 4)), np.ones((3, 5)), permutations=10, seed=0)
    with pytest.raises(ValueError, match="permutations must be positive"):
        vendi_permutation_p_value(np.eye(3), np.eye(3), permutations=0, seed=0)
