"""Lead with what is missing: one line on coverage against the reference, for the report's header.

A batch explored against real data is first of all a question of what it lacks. The line counts the
shared modes the batch has no example of (`missing`) or under-covers (`under`), the share of the
real data they hold, the level they were tested at and how many real modes were too small to test
(a mode of one or two real examples is absent by chance: it is not counted as lacking, and saying how
many there are tells the reader how much of the real data the flags could not speak for), and then
names the largest lacking and over-produced modes, each by its id and extractive name (`modes.names`:
its most distinctive words, the name every other output gives it), so the answer is on the first
screen instead of far down a table sorted by discrepancy. The flags are `modes.shares`'s, the ones
`seeds` and the explorer use.
"""

from __future__ import annotations

from clusterdiv.reports.sections import ClusterShare, ClusterShares, mode_ref


def mode_label(row: ClusterShare) -> str:
    """`mode 7 "alarm, wake, morning"`: the id the tables use and the name that says what it holds."""
    return f'mode {mode_ref(row.cluster_id)} "{row.name}"' if row.name else f"mode {mode_ref(row.cluster_id)}"


def coverage_line(shares: ClusterShares | None, *, top_over: int = 3, top_lacking: int = 3) -> str | None:
    """None without a reference (no `Report.cluster_shares`).

    The counts are a partition of the real modes (covered, lacking, too small to test: `ClusterShares.counts`,
    the counts `seeds` and the explorer print too), and the share of the real data is said to be held
    by the lacking modes, never by the batch (issue 32: "the batch lacks 22 of 32 real modes ...,
    holding 63.0% of the real data" read as the batch holding it)."""
    if not shares or not shares.clusters:
        return None
    rows = shares.clusters
    n = shares.counts()
    over = sorted((r for r in rows if r.flag in ("over", "batch_only")),
                  key=lambda r: -(r.batch_share - r.reference_share))[:top_over]
    tested = f", false discovery rate {shares.alpha:g}" if shares.alpha is not None else ""
    line = (f"coverage vs the reference: {n.covered} of {n.real} real modes covered, {n.lacking} lacking "
            f"({n.missing} missing, {n.under} under-covered{tested})"
            + (f", {n.untestable} too small to test" if shares.alpha is not None else "")
            + f"; the {n.lacking} lacking {'mode holds' if n.lacking == 1 else 'modes hold'} "
            f"{n.lacking_share:.1%} of the real data")
    if shares.alpha is not None and n.untestable:
        line += f", the {n.untestable} too small to test {n.untestable_share:.1%}"
    lacking = sorted((r for r in rows if r.reference_count > 0 and r.flag in ("missing", "under")),
                     key=lambda r: (-(r.reference_share - r.batch_share), r.cluster_id))
    if lacking:
        more = len(lacking) - top_lacking
        line += "; most lacking: " + ", ".join(
            f"{mode_label(r)} ({r.batch_share:.1%} of the batch vs {r.reference_share:.1%} real)"
            for r in lacking[:top_lacking]) + (f" and {more} more" if more > 0 else "")
    if over:
        line += "; most over-produced: " + ", ".join(
            f"{mode_label(r)} ({r.batch_share:.1%} of the batch vs {r.reference_share:.1%} real)"
            for r in over)
    return line
