"""The anchoring checks as a gate: which verdicts make `--gate` exit 3, as `check` does on a breach.

Each check already leads its report with the line a reader must not miss (render.py's headlines);
in CI nobody reads it, so a bad verdict must also be an exit status. One rule per section, the
same condition its red headline shows: an uncovered or undecided tail entry, synthetic data dominating a group
or a mix off its target, any recursion-seeded example, a stale batch. Warnings in yellow
(under-covered entries, a drifting batch) do not fail the gate: they are advice, not verdicts.
"""

from __future__ import annotations

from clusterdiv.reports.report import Report


def breaches(report: Report) -> list[str]:
    """One line per bad verdict in `report`'s anchoring sections; empty when the gate passes."""
    out = []
    if (t := report.tail_audit) is not None and t.n_uncovered:
        out.append(f"{t.n_uncovered} of {t.n_entries} tail entries uncovered: {', '.join(t.uncovered)}")
    if t is not None and t.n_undecided:  # coverage nobody trusted can vouch for is not a pass
        out.append(f"{t.n_undecided} of {t.n_entries} tail entries undecided (no seeds, LLM judge not trusted): "
                   f"{', '.join(t.undecided)}")
    if (m := report.mix) is not None:
        if m.dominated:
            out.append(f"synthetic data dominates {len(m.dominated)} of {m.n_groups} groups")
        if m.status in ("too_synthetic", "too_real"):
            out.append(f"the mix is {m.status.replace('_', ' ')} for its target")
    if (g := report.lineage) is not None and g.recursion_seeded:
        out.append(f"{g.recursion_seeded} of {g.n_batch} batch examples are recursion-seeded")
    if (d := report.drift) is not None and d.verdict == "stale":
        out.append(f"the batch is stale: {'; '.join(d.reasons)}")
    return out


__all__ = ["breaches"]
