"""Embedding-based set diversity: mean pairwise cosine similarity and the Vendi score.

numpy/scipy only (no torch): embeddings arrive as arrays, so these metrics run anywhere and are
cheap enough to bootstrap. Both use the cosine kernel, so rows are L2-normalised first; a zero
row has no direction and no cosine, so it is rejected rather than silently counted as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.linalg

__all__ = ["mean_pairwise_cosine", "mean_pairwise_cosine_bootstrap", "unit_rows", "vendi_normalized",
           "vendi_permutation_p_value", "vendi_score"]


def _as_matrix(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array (n, d), got shape {X.shape}")
    return X


def _row_norms(X: np.ndarray) -> np.ndarray:
    """L2 norm of each row; raises on NaN/inf entries (they make the norm non-finite) or zero rows.

    ``einsum`` rather than ``np.linalg.norm(axis=1)``: the latter is ~50x slower on (10^5, 384).
    """
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    if not np.all(np.isfinite(norms)):
        raise ValueError("embeddings contain NaN or infinite values")
    if np.any(norms == 0):
        raise ValueError(f"{int(np.sum(norms == 0))} embedding row(s) are all zeros: cosine undefined")
    return norms


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` scaled to unit L2 norm (float64). Raises on NaN/inf or zero rows."""
    X = _as_matrix(X)
    return X / _row_norms(X)[:, None]


def mean_pairwise_cosine(X: np.ndarray) -> float:
    """Mean cosine similarity over all unordered pairs of distinct rows, exactly, in O(n d).

    With unit rows u_i and s = sum_i u_i, ||s||^2 = sum_{i,j} u_i.u_j = n + 2 sum_{i<j} u_i.u_j,
    so the mean over the n(n-1)/2 pairs is (||s||^2 - n) / (n (n-1)); no n x n matrix is formed,
    which is what lets it run on 10^5 embeddings in well under a second. Higher = the texts point
    the same way (less diverse). Raises ``ValueError`` for fewer than two rows (no pair exists).
    """
    X = _as_matrix(X)
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"mean pairwise cosine needs at least two embeddings, got {n}")
    s = (1.0 / _row_norms(X)) @ X  # sum of the unit rows, without materialising them
    return float((s @ s - n) / (n * (n - 1)))


def mean_pairwise_cosine_bootstrap(
    X: np.ndarray, *, replicates: int, rng: np.random.Generator, chunk: int = 64
) -> np.ndarray:
    """Mean pairwise cosine of ``replicates`` bootstrap resamples of the rows.

    A resample is a weight vector w (how often each row was drawn). Pairs of two copies of the
    same row are left out (their cosine is 1 by construction and would bias small resamples up),
    so a replicate is (||U^T w||^2 - sum w_i^2) / (n^2 - sum w_i^2); with w = 1 this is exactly
    :func:`mean_pairwise_cosine`. Replicates are done ``chunk`` at a time as one matrix product.
    """
    U = unit_rows(X)
    n = U.shape[0]
    if n < 2:
        raise ValueError(f"mean pairwise cosine needs at least two embeddings, got {n}")
    out = np.empty(replicates, dtype=np.float64)
    for start in range(0, replicates, chunk):
        b = min(chunk, replicates - start)
        draws = [np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(b)]
        W = np.stack(draws).astype(np.float64)
        S = W @ U
        self_pairs = np.einsum("ij,ij->i", W, W)
        denom = n * n - self_pairs
        # A resample that drew one row n times has no pair of distinct rows: NaN, dropped by the caller.
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + b] = (np.einsum("ij,ij->i", S, S) - self_pairs) / denom
    return out


def _entropy_q(p: np.ndarray, q: float) -> float:
    """Renyi entropy of order q of eigenvalues p; zero eigenvalues are dropped.

    "Zero" includes round-off: eigenvalues below size * eps * the largest one. For q >= 1 they
    change nothing visible, but for q < 1 each adds p^q ~ 1e-8, so a rank-deficient kernel would
    score differently depending on which of the two equivalent matrices was decomposed.
    """
    p = p[p > p.shape[0] * np.finfo(np.float64).eps * max(float(p.max()), 0.0)]
    if q == 1:
        return float(-(p * np.log(p)).sum())
    if math.isinf(q):
        return float(-np.log(p.max()))
    return float(np.log((p**q).sum()) / (1 - q))


def vendi_score(X: np.ndarray, q: float = 1) -> float:
    """Vendi score (Friedman & Dieng 2023) with the cosine kernel: the effective number of distinct rows.

    exp of the order-q entropy of the eigenvalues of K = U U^T / n (U: unit rows). K's
    nonzero eigenvalues equal those of the d x d matrix U^T U / n, so we decompose whichever is
    smaller: O(n d^2 + d^3) instead of O(n^3), which is what makes it usable for n >> d.
    Ranges from 1 (all rows identical) to min(n, d). ``q`` = 1 is the Shannon case of the paper;
    ``q = math.inf`` is also accepted. Matches ``vendi_score.vendi.score_dual`` / ``score_K``.
    """
    if q < 0:
        raise ValueError(f"order q must be >= 0, got {q}")
    U = unit_rows(X)
    n, d = U.shape
    if n == 0:
        raise ValueError("Vendi score of an empty set is undefined")
    gram = (U.T @ U) / n if d < n else (U @ U.T) / n
    eigenvalues = scipy.linalg.eigvalsh(gram)
    return float(np.exp(_entropy_q(eigenvalues, q)))


def vendi_normalized(X: np.ndarray, size: int, *, subsets: int = 20, seed: int = 0) -> tuple[float, float]:
    """Vendi per ``size`` examples: the mean Vendi of ``subsets`` seeded ``size``-row subsets, / ``size``.

    Vendi grows with the number of rows (more rows, more effective distinct ones), so two batches
    of different sizes cannot be compared by it: on real intent data it moved 42% between 100 and
    800 examples of the same data (eval/results/size.md). The expected Vendi of ``size`` rows drawn
    from the batch does not depend on how many rows the batch has (it moved 2% there), the way
    ``score_normalized`` refers the mode count to a fixed sample size. Returns (value, standard
    deviation over the subsets). Exactly ``vendi_score(X) / size`` when the batch has ``size`` rows;
    ``ValueError`` below that (a Vendi of fewer rows cannot be scaled up to more).
    """
    X = _as_matrix(X)
    n = X.shape[0]
    if size < 1 or subsets < 1:
        raise ValueError(f"size and subsets must be positive, got {size} and {subsets}")
    if n < size:
        raise ValueError(f"{n} rows are fewer than the reference size {size}: compare the raw Vendi of "
                         "equal-size batches instead")
    if n == size:
        return vendi_score(X) / size, 0.0
    rng = np.random.default_rng(seed)
    values = np.array([vendi_score(X[rng.choice(n, size=size, replace=False)]) for _ in range(subsets)]) / size
    return float(values.mean()), float(values.std(ddof=1)) if subsets > 1 else 0.0


def _vendi_of_masks(U: np.ndarray, G: np.ndarray | None, masks: np.ndarray) -> np.ndarray:
    """Vendi of each row subset of ``U`` given as a boolean mask (all masks select the same count).

    The kernels are stacked so that one batched ``eigvalsh`` call decomposes them all. ``G`` is the
    pooled n x n Gram matrix when a subset is no larger than the dimension (decompose the subset's
    block of it), None otherwise (decompose the d x d matrix U_s^T U_s).
    """
    size = int(masks[0].sum())
    if G is not None:
        index = np.stack([np.flatnonzero(m) for m in masks])
        kernels = G[index[:, :, None], index[:, None, :]] / size
    else:
        kernels = np.einsum("kn,nd,ne->kde", masks.astype(np.float64), U, U, optimize=True) / size
    return np.array([math.exp(_entropy_q(e, 1)) for e in np.linalg.eigvalsh(kernels)])


def _split_differences(U: np.ndarray, G: np.ndarray | None, masks: np.ndarray) -> np.ndarray:
    return _vendi_of_masks(U, G, masks) - _vendi_of_masks(U, G, ~masks)


def _test_workers() -> int:
    from clusterdiv.llm.local import default_threads  # OMP_NUM_THREADS when set, else the CPUs granted

    return default_threads()


def vendi_permutation_p_value(A: np.ndarray, B: np.ndarray, *, permutations: int, seed: int,
                              chunk: int = 32, workers: int | None = None,
                              progress: Callable[[int], None] | None = None) -> tuple[float, float]:
    """Two-sided permutation test of the Vendi difference of two batches: (Vendi(A) - Vendi(B), p).

    Why a test of its own: `compare` ranks batches by the mode count, whose permutation test holds
    the modes fixed; Vendi ranks sets more consistently on the validation families (eval/RESULTS.md),
    so compare reports whether its difference could be chance too. The rows of both batches are pooled
    and split at random into groups of the original sizes (seeded); p is the share of splits (counting
    the observed one) whose absolute difference is at least the observed. Compare it at equal sizes
    only: Vendi grows with the number of rows.

    Why one BLAS thread per decomposition, and ``workers`` threads over the splits: each split costs two
    eigendecompositions of a few hundred rows, too small for OpenBLAS to share out; its threads spin
    against each other and against torch's (which embedded the texts), and on a busy 2-core machine
    the same 1000 splits took 7-50x longer than on one thread (eval/results/bench_compare_vendi.md).
    Splits are drawn in the same seeded order whatever ``workers`` and ``chunk`` are, and every
    matrix is decomposed on its own, so neither changes the p-value. ``workers`` defaults to
    OMP_NUM_THREADS, else the CPUs this process may use. ``progress`` is told how many splits each
    chunk finished.
    """
    from threadpoolctl import threadpool_limits

    UA, UB = unit_rows(A), unit_rows(B)
    if UA.shape[1] != UB.shape[1]:
        raise ValueError(f"embedding dimensions differ: {UA.shape[1]} and {UB.shape[1]}")
    na, nb = UA.shape[0], UB.shape[0]
    if na < 1 or nb < 1 or permutations < 1:
        raise ValueError("both batches need rows and permutations must be positive")
    workers = max(1, min(workers or _test_workers(), chunk))
    U = np.vstack([UA, UB])
    n, d = U.shape
    rng = np.random.default_rng(seed)
    extreme = 0
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        G = U @ U.T if max(na, nb) <= d else None
        observed = vendi_score(UA) - vendi_score(UB)
        for start in range(0, permutations, chunk):
            k = min(chunk, permutations - start)
            masks = np.zeros((k, n), dtype=bool)
            for row in masks:
                row[rng.permutation(n)[:na]] = True
            parts = [part for part in np.array_split(masks, workers) if len(part)]
            diff = np.concatenate(list(pool.map(lambda part: _split_differences(U, G, part), parts)))
            extreme += int(np.sum(np.abs(diff) >= abs(observed) - 1e-9))
            if progress is not None:
                progress(k)
    return float(observed), (1 + extreme) / (1 + permutations)
