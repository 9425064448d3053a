"""Reference metrics against independent computations: brute-force distance matrices for k-NN
precision/recall and density/coverage, ``mauve.compute_mauve`` called directly; plus the full
registry with embeddings."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from clusterdiv.metrics import reference
from clusterdiv.metrics.reference import density_coverage, knn_precision_recall, mauve_score
from clusterdiv.metrics.registry import ALL_METRICS, METRIC_GROUPS, compute_set_metrics
from clusterdiv.metrics.semantic import mean_pairwise_cosine, vendi_score


def brute_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(axis=-1))


def brute_radii(X: np.ndarray, k: int) -> np.ndarray:
    D = brute_distances(X, X)
    np.fill_diagonal(D, np.inf)  # a point is not its own neighbour
    return np.sort(D, axis=1)[:, k - 1]


def brute_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    r_rad, f_rad = brute_radii(real, k), brute_radii(fake, k)
    D = brute_distances(real, fake)  # real x fake
    inside_real = D < r_rad[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((D < f_rad[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum() / (k * fake.shape[0])),
        "coverage": float((D.min(axis=1) < r_rad).mean()),
    }


def two_sets(seed: int, n_real: int, n_fake: int, d: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_real, d)), rng.normal(size=(n_fake, d)) * 1.3 + shift


@pytest.mark.parametrize(
    ("seed", "n_real", "n_fake", "d", "shift", "k"),
    [(0, 120, 90, 4, 0.4, 5), (1, 60, 150, 8, 1.0, 3), (2, 200, 200, 2, 0.2, 10), (3, 40, 40, 16, 0.0, 1)],
)
def test_knn_metrics_match_brute_force(seed, n_real, n_fake, d, shift, k):
    real, fake = two_sets(seed, n_real, n_fake, d, shift)
    expected = brute_prdc(real, fake, k)
    pr = knn_precision_recall(real, fake, k=k)
    dc = density_coverage(real, fake, k=k)
    assert (pr.precision, pr.recall) == pytest.approx((expected["precision"], expected["recall"]), abs=1e-12)
    assert (dc.density, dc.coverage) == pytest.approx((expected["density"], expected["coverage"]), abs=1e-12)
    assert 0 < pr.precision < 1 or shift == 0.0  # the cases are not degenerate


def test_knn_metrics_chunking_does_not_change_results():
    import sklearn

    real, fake = two_sets(4, 1200, 400, 6, 0.5)  # 1200 x 400 float64 distances = 3.7 MiB
    full = (knn_precision_recall(real, fake), density_coverage(real, fake))
    with sklearn.config_context(working_memory=1):  # 1 MiB: forces several row blocks
        blocks = list(reference._cross_distances(real, fake))
        chunked = (knn_precision_recall(real, fake), density_coverage(real, fake))
    assert len(blocks) > 1
    assert chunked == full


def test_a_row_on_a_balls_edge_counts_the_same_whatever_the_rounding():
    """Fake rows that copy real rows sit exactly on the edges of their neighbours' balls; rounding of
    1e-9 (what a different BLAS does to the same input) must not move them in or out."""
    real, _ = two_sets(6, 40, 1, 8, 0.0)
    fake = real[:12].copy()  # each copy lies at exactly the radius of every real row it is k-th neighbour of
    results = set()
    for seed in range(5):
        jitter = np.random.default_rng(seed).normal(size=fake.shape) * 1e-9
        pr, dc = knn_precision_recall(real, fake + jitter, k=3), density_coverage(real, fake + jitter, k=3)
        results.add((pr.precision, pr.recall, dc.density, dc.coverage))
    assert len(results) == 1
    # and the edge is outside, as with the strict < of the reference implementation on exact ties
    radii = brute_radii(real, 3)
    D = brute_distances(real, fake)
    on_edge = np.isclose(D, radii[:, None], atol=1e-9)
    assert on_edge.any()
    inside = (D < radii[:, None]) & ~on_edge
    assert results.pop()[2] == pytest.approx(inside.sum() / (3 * fake.shape[0]))


def test_knn_metrics_on_identical_and_disjoint_sets():
    real, _ = two_sets(5, 80, 1, 5, 0.0)
    same_pr, same_dc = knn_precision_recall(real, real.copy()), density_coverage(real, real.copy())
    assert same_pr.precision == same_pr.recall == same_dc.coverage == 1.0
    far = real + 1000.0
    far_pr, far_dc = knn_precision_recall(real, far), density_coverage(real, far)
    assert far_pr.precision == far_pr.recall == far_dc.density == far_dc.coverage == 0.0


def test_knn_metrics_reject_bad_inputs():
    real, fake = two_sets(6, 10, 10, 3, 0.0)
    with pytest.raises(ValueError, match="more than k"):
        knn_precision_recall(real[:3], fake, k=5)
    with pytest.raises(ValueError, match="dimension"):
        density_coverage(real, fake[:, :2])
    with pytest.raises(ValueError, match="k must be"):
        knn_precision_recall(real, fake, k=0)


# ---------------------------------------------------------------- MAUVE


@pytest.fixture(scope="module")
def mauve_pkg():
    return pytest.importorskip("mauve", reason="mauve-text not installed")


@pytest.mark.filterwarnings("ignore")
def test_mauve_equals_direct_package_call(mauve_pkg):
    p, q = two_sets(7, 200, 180, 12, 0.3)
    direct = mauve_pkg.compute_mauve(
        p_features=p, q_features=q, seed=3, num_buckets="auto", verbose=False
    ).mauve
    assert mauve_score(p, q, seed=3) == pytest.approx(direct, abs=1e-12)


@pytest.mark.filterwarnings("ignore")
def test_mauve_orders_close_and_far_sets(mauve_pkg):
    p, q_close = two_sets(8, 200, 200, 12, 0.0)
    _, q_far = two_sets(9, 200, 200, 12, 3.0)
    close, far = mauve_score(p, q_close), mauve_score(p, q_far)
    assert close > 0.9 > 0.1 > far
    assert mauve_score(p, p) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.filterwarnings("ignore")
def test_mauve_on_features_uses_no_network(mauve_pkg, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("MAUVE on precomputed features tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    p, q = two_sets(10, 60, 60, 8, 0.5)
    assert 0.0 <= mauve_score(p, q) <= 1.0


def test_mauve_missing_package_raises_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mauve(name, *args, **kwargs):
        if name == "mauve":
            raise ImportError("No module named 'mauve'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mauve)
    p, q = two_sets(11, 20, 20, 4, 0.0)
    with pytest.raises(ImportError, match="mauve-text"):
        reference.mauve_score(p, q)


# ---------------------------------------------------------------- registry with embeddings


@pytest.mark.filterwarnings("ignore")
def test_registry_all_metrics_match_direct_calls(mauve_pkg):
    rng = np.random.default_rng(12)
    texts = [" ".join(f"w{rng.integers(40)}" for _ in range(rng.integers(3, 12))) for _ in range(120)]
    emb = rng.normal(size=(120, 10)) + 0.2
    ref = rng.normal(size=(150, 10))
    result = compute_set_metrics(texts, embeddings=emb, reference_embeddings=ref, seed=5, bootstrap=50)
    assert list(result) == ALL_METRICS
    assert result["embedding_mean_cosine"].value == pytest.approx(mean_pairwise_cosine(emb), abs=1e-12)
    lo, hi = result["embedding_mean_cosine"].ci95
    assert lo < result["embedding_mean_cosine"].value < hi
    assert result["vendi"].value == pytest.approx(vendi_score(emb), rel=1e-12)
    assert result["mauve"].value == pytest.approx(mauve_score(ref, emb, seed=5), abs=1e-12)
    expected = brute_prdc(ref, emb, 5)
    for name in ("precision", "recall", "density", "coverage"):
        assert result[name].value == pytest.approx(expected[name], abs=1e-12)
        assert result[name].meaning


def test_registry_skips_metrics_without_inputs_and_checks_shapes():
    texts = ["a b c", "d e f", "a b d"]
    lexical_only = compute_set_metrics(texts, bootstrap=0)
    assert list(lexical_only) == METRIC_GROUPS["lexical"]
    semantic = compute_set_metrics(texts, embeddings=np.eye(3), select={"semantic"}, bootstrap=0)
    assert list(semantic) == METRIC_GROUPS["semantic"]
    assert semantic["vendi"].value == pytest.approx(3.0)
    with pytest.raises(ValueError, match="one row per text"):
        compute_set_metrics(texts, embeddings=np.eye(4))


def test_registry_reference_metrics_undefined_for_tiny_sets():
    rng = np.random.default_rng(13)
    result = compute_set_metrics(
        ["a", "b", "c"],
        embeddings=rng.normal(size=(3, 4)),
        reference_embeddings=rng.normal(size=(50, 4)),
        select={"precision", "recall", "density", "coverage"},
    )
    assert all(result[name].value is None for name in ("precision", "recall"))
    assert "more than k" in result["recall"].details["reason"]
    assert result["density"].value is not None  # density/coverage need k+1 reference rows only


def test_mauve_takes_every_seed_the_cli_and_service_accept():
    """The largest accepted seed (2**32 - 1) once crashed faiss (a C int seed) inside a service job."""
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    value = mauve_score(p, q, seed=2**32 - 1)
    assert 0.0 < value <= 1.0
    assert mauve_score(p, q, seed=7) == mauve_score(p, q, seed=7)  # small seeds unchanged and deterministic
