"""Per-cluster shares of a batch versus a reference set, in one shared clustering, and the test behind the flags.

Clustering both sets together puts them in the same mode space, so "mode 7 is 12% of real data
but 1% of the batch" is a statement about the same mode. Modes the batch under-covers are the
tail it has lost; modes it over-produces are where it collapsed.

Flags are tested, not guessed (issue 31). A mode's absence drives action (`seeds` draws real
examples for every mode the batch lacks), and a mode of 1-2 real examples is absent from a batch by
chance most of the time: a ratio rule called those `missing` and half the seeds were wrong. So:

* The test. A mode with batch count b and reference count r, out of n_b batch and n_r reference
  rows (noise rows count in n_b and n_r: they are rows of no mode), has under the null the same
  share p in both sets. Both sets have fixed sizes, so b ~ Bin(n_b, p) and r ~ Bin(n_r, p)
  independently; conditioning on m = b + r removes the unknown p, and b | m is hypergeometric (m
  draws from the n_b + n_r rows, n_b of them the batch's): the one-sided Fisher exact test of the
  2x2 table mode / not-mode x batch / reference. The reference's own sampling noise is in it (r is
  random, not a known share). The binomial b | m ~ Bin(m, n_b / (n_b + n_r)) that is often quoted
  for this is the same conditional test for Poisson counts (the exact test of two Poisson rates,
  Przyborowski and Wilenski 1940): it is the hypergeometric's limit when the mode is a small share
  of both sets and otherwise conservative (larger variance, heavier tails, larger p-values), so the
  exact test of the design the data has, fixed-size sets, is used. The test is conditional on the
  clustering, which was built from both sets.
* Multiple testing. Benjamini-Hochberg across the tested modes (`scipy.stats.false_discovery_control`):
  with dozens of modes some p-values are small by chance, and the false discovery rate is what a
  reader acting on a list of flags cares about.
* Too small to test. A mode so small in the reference that its p-value cannot reach the level even
  if the batch had none of it (p at b = 0, before any correction) can never be flagged; it is
  `untestable`, reported as such and never as missing, and is left out of the correction (Tarone
  1990: a hypothesis that can never be rejected only dilutes the others' level).
* Flags. `missing`: b = 0 and significant; `under`: b > 0, significant and at most `UNDER` x the
  reference share (the floor stays beside the test so a flag means a large effect that is not
  chance: with 20,000 examples a side a mode at 0.9x its real share is significant, and seeds for it
  would be noise of another kind); `untestable`: too small to test as above and below its reference
  share (a tiny mode the batch holds at or above its share is in no doubt of being lacking);
  `batch_only`: the reference has none; `over`: at least `OVER` x the reference share; `balanced`:
  the rest.
* `over` stays the ratio rule, with its evidence recorded beside it (`p_over`, `q_over`: the upper
  tail, Benjamini-Hochberg across the modes that could reach the level). It says where the batch's
  mass went, a description of the batch that drives no action (nothing is seeded or dropped for it;
  the coverage line names the largest by share excess, never a one-example accident), and testing it
  loses what it is for on the batch sizes `compare` sees: a 2-intent batch of 40 against 80 others
  holds its dominant openings at 4x with q_over 0.067 (tests/test_compare.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from clusterdiv.core.errors import InputError
from clusterdiv.modes.cluster import NOISE
from clusterdiv.reports.sections import ClusterShare, ClusterShares  # noqa: F401  (re-exported)

OVER, UNDER = 2.0, 0.5  # share ratios: `over` at OVER; `under` must also pass UNDER (see the module docstring)
DEFAULT_ALPHA = 0.05
MAX_ALPHA = 0.5
LACKING = ("missing", "under")
"""The flags of a mode the batch lacks: `seeds` draws for these, the coverage line counts them."""


def flag_test_text(alpha: float) -> str:
    """How the flags were decided, in one line, for the report beside them."""
    return (f"one-sided Fisher exact test per shared mode (batch count vs reference count, both sets' sampling "
            f"noise), Benjamini-Hochberg across the modes, false discovery rate {alpha:g}; a mode that could not "
            f"reach {alpha:g} even with no batch example is untestable; under also needs <= {UNDER:g}x the "
            f"reference share; over is >= {OVER:g}x (ratio only)")


def check_alpha(alpha: float) -> float:
    """The level, refused unless 0 < alpha <= MAX_ALPHA (a level above one half flags chance itself)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= MAX_ALPHA:
        raise InputError(f"alpha must be a level in (0, {MAX_ALPHA:g}], got {alpha!r}", option="alpha")
    return float(alpha)


def lacking_p_values(b: Sequence[int], r: Sequence[int], n_batch: int, n_ref: int) -> np.ndarray:
    """P(batch count <= b | b + r) under equal shares: the lower tail of the hypergeometric (see the module)."""
    from scipy.stats import hypergeom

    b_, m = np.asarray(b, dtype=np.int64), np.asarray(b, dtype=np.int64) + np.asarray(r, dtype=np.int64)
    return np.clip(hypergeom.cdf(b_, n_batch + n_ref, m, n_batch), 0.0, 1.0)


def excess_p_values(b: Sequence[int], r: Sequence[int], n_batch: int, n_ref: int) -> np.ndarray:
    """P(batch count >= b | b + r) under equal shares: the upper tail, for `over`."""
    from scipy.stats import hypergeom

    b_, m = np.asarray(b, dtype=np.int64), np.asarray(b, dtype=np.int64) + np.asarray(r, dtype=np.int64)
    return np.clip(hypergeom.sf(b_ - 1, n_batch + n_ref, m, n_batch), 0.0, 1.0)


def smallest_lacking_p(r: Sequence[int], n_batch: int, n_ref: int) -> np.ndarray:
    """The lower-tail p-value a mode of r reference examples would get with no batch example: the
    smallest it can reach (its absence is the strongest evidence the batch can give)."""
    return lacking_p_values([0] * len(r), r, n_batch, n_ref)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (q-values), in input order; an empty family gives an empty list."""
    from scipy.stats import false_discovery_control

    if len(p_values) == 0:
        return []
    return [float(q) for q in false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]


def cluster_shares(labels: Sequence[int], is_batch: Sequence[bool], ids: Sequence[str], *,
                   alpha: float = DEFAULT_ALPHA, summaries: dict[int, str] | None = None,
                   names: dict[int, str] | None = None, per_cluster: int = 3) -> list[ClusterShare]:
    """Shares per shared cluster (noise excluded), flagged by the test of the module docstring at
    false discovery rate `alpha`; most discrepant first."""
    alpha = check_alpha(alpha)
    n_batch = sum(1 for b in is_batch if b)
    n_ref = len(is_batch) - n_batch
    batch = Counter(lab for lab, b in zip(labels, is_batch, strict=True) if b and lab != NOISE)
    ref = Counter(lab for lab, b in zip(labels, is_batch, strict=True) if not b and lab != NOISE)
    members: dict[tuple[int, bool], list[str]] = {}
    for lab, b, i in zip(labels, is_batch, ids, strict=True):
        members.setdefault((lab, b), []).append(i)
    clusters = sorted(set(batch) | set(ref))
    shared = [c for c in clusters if ref[c] > 0]
    bc, rc = [batch[c] for c in shared], [ref[c] for c in shared]
    p_low = dict(zip(shared, lacking_p_values(bc, rc, n_batch, n_ref).tolist(), strict=True))
    p_high = dict(zip(shared, excess_p_values(bc, rc, n_batch, n_ref).tolist(), strict=True))
    testable = {c for c, p in zip(shared, smallest_lacking_p(rc, n_batch, n_ref).tolist(), strict=True)
                if p <= alpha}
    # the upper family: modes whose largest possible batch count (all m, or the whole batch) could reach alpha
    reach_high = excess_p_values([min(b + r, n_batch) for b, r in zip(bc, rc, strict=True)],
                                 [b + r - min(b + r, n_batch) for b, r in zip(bc, rc, strict=True)], n_batch, n_ref)
    can_be_over = {c for c, p in zip(shared, reach_high.tolist(), strict=True) if p <= alpha}
    low_family = [c for c in shared if c in testable]
    high_family = [c for c in shared if c in can_be_over]
    q_low = dict(zip(low_family, benjamini_hochberg([p_low[c] for c in low_family]), strict=True))
    q_high = dict(zip(high_family, benjamini_hochberg([p_high[c] for c in high_family]), strict=True))
    rows = []
    for cluster in clusters:
        b, r = batch[cluster], ref[cluster]
        bs = b / n_batch if n_batch else 0.0
        rs = r / n_ref if n_ref else 0.0
        ratio = bs / rs if rs > 0 else None
        lacking = cluster in q_low and q_low[cluster] <= alpha
        if r == 0:
            flag = "batch_only"
        elif ratio is not None and ratio >= OVER:
            flag = "over"
        elif cluster not in testable:
            flag = "untestable" if bs < rs else "balanced"
        elif lacking and b == 0:
            flag = "missing"
        elif lacking and ratio is not None and ratio <= UNDER:
            flag = "under"
        else:
            flag = "balanced"
        rows.append(ClusterShare(
            cluster_id=cluster, batch_count=b, reference_count=r,
            batch_share=bs, reference_share=rs, ratio=ratio, flag=flag,
            p_value=_finite(p_low.get(cluster)), q_value=_finite(q_low.get(cluster)),
            p_over=_finite(p_high.get(cluster)), q_over=_finite(q_high.get(cluster)),
            criteria_summary=(summaries or {}).get(cluster, ""), name=(names or {}).get(cluster, ""),
            batch_example_ids=members.get((cluster, True), [])[:per_cluster],
            reference_example_ids=members.get((cluster, False), [])[:per_cluster],
        ))
    return sorted(rows, key=lambda r: -abs(r.batch_share - r.reference_share))


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def shares_section(rows: Sequence[ClusterShare], *, method: str, n_batch: int, n_reference: int,
                   n_clusters: int, alpha: float) -> ClusterShares:
    """The `cluster_shares` section of a report from `cluster_shares` rows: one place that lists the
    lacking, over-produced and untestable modes, so every report and consumer counts them alike."""
    return ClusterShares(
        method=method, n_batch=n_batch, n_reference=n_reference, n_shared_clusters=n_clusters,
        alpha=alpha, flag_test=flag_test_text(alpha),
        under_covered=[r.cluster_id for r in rows if r.flag in LACKING],
        over_produced=[r.cluster_id for r in rows if r.flag in ("over", "batch_only")],
        untestable=[r.cluster_id for r in rows if r.flag == "untestable"],
        clusters=list(rows),
    )
