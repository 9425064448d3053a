"""Per-cluster shares of a batch versus a reference set, in one shared clustering.

Clustering both sets together puts them in the same mode space, so "mode 7 is 12% of real data
but 1% of the batch" is a statement about the same mode. Modes the batch under-covers are the
tail it has lost; modes it over-produces are where it collapsed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from clusterdiv.modes.cluster import NOISE
from clusterdiv.reports.sections import ClusterShare, ClusterShares  # noqa: F401  (re-exported)

OVER, UNDER = 2.0, 0.5  # share ratios beyond which a mode is flagged


def cluster_shares(labels: Sequence[int], is_batch: Sequence[bool], ids: Sequence[str], *,
                   summaries: dict[int, str] | None = None, per_cluster: int = 3) -> list[ClusterShare]:
    """Shares per shared cluster (noise excluded), most discrepant first."""
    n_batch = sum(1 for b in is_batch if b)
    n_ref = len(is_batch) - n_batch
    batch = Counter(lab for lab, b in zip(labels, is_batch, strict=True) if b and lab != NOISE)
    ref = Counter(lab for lab, b in zip(labels, is_batch, strict=True) if not b and lab != NOISE)
    members: dict[tuple[int, bool], list[str]] = {}
    for lab, b, i in zip(labels, is_batch, ids, strict=True):
        members.setdefault((lab, b), []).append(i)
    rows = []
    for cluster in sorted(set(batch) | set(ref)):
        bs = batch[cluster] / n_batch if n_batch else 0.0
        rs = ref[cluster] / n_ref if n_ref else 0.0
        ratio = bs / rs if rs > 0 else None
        if rs == 0:
            flag = "batch_only"
        elif bs == 0:
            flag = "missing"
        elif ratio is not None and ratio >= OVER:
            flag = "over"
        elif ratio is not None and ratio <= UNDER:
            flag = "under"
        else:
            flag = "balanced"
        rows.append(ClusterShare(
            cluster_id=cluster, batch_count=batch[cluster], reference_count=ref[cluster],
            batch_share=bs, reference_share=rs, ratio=ratio, flag=flag,
            criteria_summary=(summaries or {}).get(cluster, ""),
            batch_example_ids=members.get((cluster, True), [])[:per_cluster],
            reference_example_ids=members.get((cluster, False), [])[:per_cluster],
        ))
    return sorted(rows, key=lambda r: -abs(r.batch_share - r.reference_share))
