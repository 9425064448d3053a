"""Clustering determinism and the score's definition, normalisation and intervals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from clusterdiv.modes.cluster import NOISE, ClusterParams, cluster_vectors
from clusterdiv.modes.scoring import (
    bootstrap_interval,
    expected_richness,
    extrapolated_richness,
    mode_counts,
    rarefied_richness,
    score_labels,
)


def blobs(n_centres: int, per: int, dim: int = 16, spread: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, dim))
    X = np.vstack([c + spread * rng.normal(size=(per, dim)) for c in centres])
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_umap_hdbscan_is_deterministic_under_a_seed():
    X = blobs(6, 20)
    params = ClusterParams(method="umap_hdbscan")
    a = cluster_vectors(X, params=params, seed=7)
    b = cluster_vectors(X, params=params, seed=7)
    assert a.method == "umap_hdbscan" and a.labels == b.labels
    assert 5 <= a.n_clusters <= 7  # finds the planted modes


def test_auto_stays_agglomerative_above_the_exact_limit():
    # issue 15: no silent switch to UMAP + HDBSCAN; above the limit the linkage runs on seeded samples
    # (past 4 x the limit: up to there it is exact linkage by cluster means, and `sampled` stays None)
    X = blobs(4, 15)
    linked = cluster_vectors(X, params=ClusterParams(agglomerative_max_n=40), seed=0)
    above = cluster_vectors(X, params=ClusterParams(agglomerative_max_n=10), seed=0)
    exact = cluster_vectors(X, params=ClusterParams(), seed=0)
    assert above.method == exact.method == linked.method == "agglomerative"
    assert above.sampled == 10 and linked.sampled is None and exact.sampled is None
    assert linked.labels == exact.labels
    assert above.labels == exact.labels


def test_agglomerative_is_deterministic_without_a_seed():
    X = blobs(3, 8)
    result = cluster_vectors(X, params=ClusterParams(), seed=0)
    assert result.method == "agglomerative" and result.n_clusters == 3 and result.n_noise == 0
    # no seed involved: any seed gives the same labels
    assert cluster_vectors(X, seed=123).labels == result.labels


def test_cluster_ids_are_ordered_by_size():
    X = np.vstack([blobs(1, 3, seed=1), blobs(1, 9, seed=2)])
    # these two random centres are ~0.38 apart in cosine distance: cut below that to keep them apart
    labels = cluster_vectors(X, params=ClusterParams(distance_threshold=0.3), seed=0).labels
    assert labels.count(0) == 9 and labels.count(1) == 3


def test_trivial_sizes():
    assert cluster_vectors(np.zeros((0, 4))).labels == []
    assert cluster_vectors(blobs(1, 1)).labels == [0]


def test_noise_points_count_as_singleton_modes():
    counts = mode_counts([0, 0, 0, 1, 1, NOISE, NOISE])
    assert sorted(counts.tolist()) == [1, 1, 2, 3]
    s = score_labels([0, 0, 0, 1, 1, NOISE, NOISE], reference_size=5)
    assert (s.n_clusters, s.n_noise, s.n_modes) == (2, 2, 4) and s.score == pytest.approx(4 / 7)


def test_rarefaction_equals_brute_force_average_over_subsamples():
    counts = np.array([4, 3, 2, 1, 1])
    population = [i for i, c in enumerate(counts) for _ in range(c)]
    for m in (1, 3, 5, 8, 11):
        brute = np.mean([len(set(s)) for s in itertools.combinations(population, m)])
        assert rarefied_richness(counts, m) == pytest.approx(brute, rel=1e-12)


def test_extrapolation_is_continuous_and_bounded():
    counts = np.array([10, 5, 3, 2, 2, 1, 1, 1])
    n = counts.sum()
    assert extrapolated_richness(counts, int(n)) == pytest.approx(len(counts))
    values = [expected_richness(counts, m) for m in range(int(n), 400, 20)]
    assert all(b >= a for a, b in itertools.pairwise(values))  # grows with m
    assert values[-1] < len(counts) + 10  # bounded by S_obs + f0_hat


def test_normalised_score_is_size_aware():
    # Same population, different sample sizes: the raw ratio drops, the normalised score stays close.
    rng = np.random.default_rng(0)
    pop = rng.integers(0, 40, size=5000)
    small, large = pop[:200].tolist(), pop[:2000].tolist()
    s_small, s_large = score_labels(small), score_labels(large)
    assert s_small.score > 2 * s_large.score
    assert abs(s_small.score_normalized - s_large.score_normalized) < 0.05


def test_interval_contains_estimate_and_is_seeded():
    counts = mode_counts([0] * 10 + [1] * 5 + [2] * 3 + [NOISE] * 4)
    stat = lambda c: len(c) / c.sum()  # noqa: E731
    lo, hi = bootstrap_interval(counts, stat, n_boot=300, seed=1)
    assert lo <= stat(counts) <= hi and hi > lo
    assert bootstrap_interval(counts, stat, n_boot=300, seed=1) == (lo, hi)


def test_many_modes_score_above_few_modes():
    few = score_labels([i % 3 for i in range(120)])
    many = score_labels([i % 60 for i in range(120)])
    assert many.score_normalized > few.score_normalized + 0.3
