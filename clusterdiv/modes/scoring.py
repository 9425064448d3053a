"""The diversity score: distinct semantic modes per sample, made comparable across sizes.

Raw score = distinct clusters / samples, where every noise point counts as a cluster of one.
That ratio falls as a sample grows (modes repeat), so it cannot compare a 200-example batch with a
5,000-example one. The normalised score is the expected number of distinct modes in a sample of a
fixed reference size m (default 100), divided by m:

* m <= n: exact rarefaction (Hurlbert 1971): E[S_m] = sum_i 1 - C(n - x_i, m) / C(n, m),
  the mean over all size-m subsamples, with no subsampling noise.
* m > n: the Chao et al. (2014, Ecological Monographs 84:45) extrapolation from singletons and
  doubletons, the standard companion of rarefaction (iNEXT).

The 95% intervals follow Chao et al. (2014) as well: bootstrap samples are drawn from an estimated
population (observed modes with coverage-adjusted shares plus the estimated unseen modes) and the
interval is the estimate +/- 1.96 bootstrap standard deviations. A plain resample-with-replacement
bootstrap would be biased low here, since resampling can never produce a mode it does not
contain and duplicates collapse singletons. The intervals describe sampling variability of the set;
they hold the clustering fixed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel

from clusterdiv.core.records import REFERENCE_SIZE
from clusterdiv.modes.cluster import NOISE


def mode_counts(labels: Sequence[int]) -> np.ndarray:
    """Sizes of the distinct modes: each cluster's size, and 1 for every noise point."""
    counter = Counter(lab for lab in labels if lab != NOISE)
    noise = sum(1 for lab in labels if lab == NOISE)
    return np.array(sorted(counter.values(), reverse=True) + [1] * noise, dtype=np.int64)


def _log_comb(a: np.ndarray | int, b: int) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return np.vectorize(math.lgamma)(a + 1) - math.lgamma(b + 1) - np.vectorize(math.lgamma)(a - b + 1)


def rarefied_richness(counts: np.ndarray, m: int) -> float:
    """Exact expected number of distinct modes in a size-m subsample without replacement."""
    n = int(counts.sum())
    if m > n:
        raise ValueError("rarefaction needs m <= n")
    if m == n:
        return float(len(counts))
    rest = n - counts
    absent = np.zeros(len(counts))
    possible = rest >= m
    if possible.any():
        absent[possible] = np.exp(_log_comb(rest[possible], m) - _log_comb(n, m))
    return float((1.0 - absent).sum())


def _f0_hat(counts: np.ndarray) -> float:
    n = int(counts.sum())
    f1 = int((counts == 1).sum())
    f2 = int((counts == 2).sum())
    if f2 > 0:
        return (n - 1) / n * f1 * f1 / (2 * f2)
    return (n - 1) / n * f1 * (f1 - 1) / 2


def extrapolated_richness(counts: np.ndarray, m: int) -> float:
    """Chao et al. (2014) expected distinct modes at size m > n."""
    n = int(counts.sum())
    s_obs = len(counts)
    f1 = int((counts == 1).sum())
    f0 = _f0_hat(counts)
    if f1 == 0 or f0 == 0:
        return float(s_obs)
    return float(s_obs + f0 * (1 - (1 - f1 / (n * f0 + f1)) ** (m - n)))


def expected_richness(counts: np.ndarray, m: int) -> float:
    return rarefied_richness(counts, m) if m <= counts.sum() else extrapolated_richness(counts, m)


def _estimated_population(counts: np.ndarray) -> np.ndarray:
    """Chao et al. (2014) bootstrap population: coverage-adjusted shares plus unseen modes."""
    n = int(counts.sum())
    f1 = int((counts == 1).sum())
    f2 = int((counts == 2).sum())
    if f1 == 0:
        return counts / n
    coverage = 1 - f1 / n * ((n - 1) * f1 / ((n - 1) * f1 + 2 * f2))
    rel = counts / n
    weight = (rel * (1 - rel) ** n).sum()
    lam = (1 - coverage) / weight if weight > 0 else 0.0
    seen = rel * (1 - lam * (1 - rel) ** n)
    unseen_n = int(math.ceil(_f0_hat(counts)))
    if unseen_n > 0 and coverage < 1:
        probs = np.concatenate([seen, np.full(unseen_n, (1 - coverage) / unseen_n)])
    else:
        probs = seen
    probs = np.clip(probs, 0, None)
    return probs / probs.sum()


def bootstrap_interval(counts: np.ndarray, statistic: Callable[[np.ndarray], float], *,
                       n_boot: int = 200, seed: int = 0) -> tuple[float, float]:
    """estimate +/- 1.96 SD over bootstrap samples from the estimated population, clipped to [0, 1]."""
    estimate = statistic(counts)
    n = int(counts.sum())
    if n < 2 or n_boot < 2:
        return (estimate, estimate)
    probs = _estimated_population(counts)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        sample = rng.multinomial(n, probs)
        values.append(statistic(sample[sample > 0]))
    sd = float(np.std(values, ddof=1))
    return (max(0.0, estimate - 1.96 * sd), min(1.0, estimate + 1.96 * sd))


class ModeCount(BaseModel):
    """How many modes a set has and the score that makes: what the headline and compare's batches share."""

    n_clusters: int
    n_noise: int
    n_modes: int
    score: float
    score_normalized: float
    ci95: tuple[float, float]
    ci95_normalized: tuple[float, float]


class DiversityScore(ModeCount):
    n_samples: int
    reference_size: int
    normalization: str


def score_labels(labels: Sequence[int], *, reference_size: int = REFERENCE_SIZE, n_boot: int = 200,
                 seed: int = 0) -> DiversityScore:
    counts = mode_counts(labels)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("cannot score an empty set")
    n_noise = sum(1 for lab in labels if lab == NOISE)

    def raw(c: np.ndarray) -> float:
        return len(c) / c.sum()

    def normalized(c: np.ndarray) -> float:
        return expected_richness(c, reference_size) / reference_size

    method = "rarefaction" if reference_size <= n else "chao2014-extrapolation"
    return DiversityScore(
        n_samples=n,
        n_clusters=len(counts) - n_noise,
        n_noise=n_noise,
        n_modes=len(counts),
        score=raw(counts),
        score_normalized=normalized(counts),
        reference_size=reference_size,
        normalization=f"expected distinct modes at {reference_size} samples / {reference_size} ({method})",
        ci95=bootstrap_interval(counts, raw, n_boot=n_boot, seed=seed),
        ci95_normalized=bootstrap_interval(counts, normalized, n_boot=n_boot, seed=seed + 1),
    )
