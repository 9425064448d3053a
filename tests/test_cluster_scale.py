"""One mode definition at every n: above `agglomerative_max_n` the clustering is still average linkage."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from clusterdiv.modes.cluster import ClusterParams, cluster_vectors, sampled_average_linkage
from clusterdiv.modes.scoring import score_labels


def modes(n_centres: int, per: int, dim: int = 24, spread: float = 0.25, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres, shuffled (so a prefix is a sample of every mode)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, dim))
    X = np.vstack([c + spread * rng.normal(size=(per, dim)) for c in centres])
    X = X[rng.permutation(len(X))]
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


PARAMS = ClusterParams(distance_threshold=0.5)


def test_a_history_across_the_size_limit_keeps_its_method_and_its_score():
    X = modes(30, 20)  # 600 examples, 30 planted modes
    limited = PARAMS.model_copy(update={"agglomerative_max_n": 100})
    history = []
    for n in (50, 100, 150, 300, 450, 600):  # past the limit (100), then past exact linkage by means (400)
        clustering = cluster_vectors(X[:n], params=limited, seed=0)
        exact = cluster_vectors(X[:n], params=PARAMS, seed=0)
        assert clustering.method == exact.method == "agglomerative"
        assert clustering.sampled == (100 if n > 400 else None)  # up to 4 x the limit: linked exactly, no sample
        assert adjusted_rand_score(exact.labels, clustering.labels) >= 0.95
        history.append(score_labels(clustering.labels, reference_size=100, n_boot=0).score_normalized)
        assert abs(history[-1] - score_labels(exact.labels, reference_size=100, n_boot=0).score_normalized) < 0.5
    # the normalised score of a growing sample of the same modes does not jump at the limit
    steps = np.abs(np.diff(history))
    assert steps.max() < 1.0, history


def test_umap_hdbscan_only_by_name():
    X = modes(4, 15)
    assert cluster_vectors(X, params=ClusterParams(agglomerative_max_n=40), seed=0).method == "agglomerative"


def test_sampled_linkage_is_deterministic_under_the_seed_and_exact_below_the_cap():
    X = modes(12, 25, seed=3)
    a = sampled_average_linkage(X, threshold=0.5, sample_size=60, seed=7)
    b = sampled_average_linkage(X, threshold=0.5, sample_size=60, seed=7)
    assert a.tolist() == b.tolist()
    assert len(set(a.tolist())) == 12  # the planted modes, with a cap a fifth of n
    exact = cluster_vectors(X, params=PARAMS).labels
    assert adjusted_rand_score(exact, sampled_average_linkage(X, threshold=0.5, sample_size=len(X))) == 1.0


def test_sampled_linkage_keeps_isolated_points_as_their_own_modes():
    rng = np.random.default_rng(1)
    X = np.vstack([modes(3, 40, seed=5), rng.normal(size=(20, 24)).astype(np.float32)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = sampled_average_linkage(X, threshold=0.5, sample_size=30, seed=0)
    assert len(set(labels[:120].tolist())) == 3
    assert len(set(labels[120:].tolist())) == 20 and not set(labels[120:]) & set(labels[:120])


def test_linkage_from_means_is_scikit_learns_average_linkage():
    from sklearn.cluster import AgglomerativeClustering

    from clusterdiv.modes.linkage import average_linkage

    rng = np.random.default_rng(4)
    for X in (modes(25, 12, seed=2), rng.normal(size=(300, 16)).astype(np.float32)):
        for threshold in (0.2, 0.5, 0.8):
            ours = average_linkage(X, None, threshold)
            sk = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, metric="cosine",
                                         linkage="average").fit_predict(X)
            assert adjusted_rand_score(sk, ours) == 1.0 and len(set(ours.tolist())) == len(set(sk.tolist()))


def test_linkage_of_weighted_groups_is_linkage_of_their_members():
    from clusterdiv.modes.linkage import average_linkage

    X = modes(8, 10, seed=6)
    copies = np.array([1, 3, 2, 1, 4] * 16)  # each point stands for this many identical points
    expanded = np.repeat(X, copies, axis=0)
    grouped = average_linkage(X, copies, 0.5)
    assert adjusted_rand_score(np.repeat(grouped, copies), average_linkage(expanded, None, 0.5)) == 1.0
    assert len(set(grouped.tolist())) == 8


def test_knn_graph_linkage_is_exact_linkage_when_the_graph_holds_the_close_pairs():
    from clusterdiv.modes.knn_linkage import graph_average_linkage, knn_graph
    from clusterdiv.modes.linkage import average_linkage

    X = modes(15, 20, seed=8)  # 300 points, 15 planted modes of 20: k = 30 reaches every mode-mate
    graph = graph_average_linkage(X, knn_graph(X, 30), 0.5)
    exact = average_linkage(X, None, 0.5)
    assert adjusted_rand_score(exact, graph) == 1.0 and len(set(graph.tolist())) == 15


def test_graph_path_catches_merges_the_graph_misses_and_is_deterministic():
    X = modes(10, 30, seed=9)
    exact = cluster_vectors(X, params=PARAMS).labels
    # k = 2 leaves each mode split into pieces along the graph; the exact linkage of the pieces joins them
    a = sampled_average_linkage(X, threshold=0.5, sample_size=20, seed=1, knn=2)
    b = sampled_average_linkage(X, threshold=0.5, sample_size=20, seed=1, knn=2)
    assert a.tolist() == b.tolist()
    assert adjusted_rand_score(exact, a) == 1.0
    levels = sampled_average_linkage(X, threshold=0.5, sample_size=20, seed=1, graph_max_n=1)
    assert len(set(levels.tolist())) == 10  # the path above the graph limit keeps the planted modes
