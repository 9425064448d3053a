"""Text renderings of `select` and `seeds` results, shared by the CLI and the service's job reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clusterdiv.tasks.actions.seeds import SeedsResult
    from clusterdiv.tasks.actions.select import SelectResult


def pct(v: float | None) -> str:
    return "" if v is None else f"{v:.1%}"


def select_markdown(result: SelectResult) -> str:
    b, a = result.before, result.after
    lines = [f"# clusterdiv select: {result.n_selected} of {result.n_input} (budget {result.budget})", "",
             f"- modes: {result.n_modes} ({result.method}); {result.weighting}",
             f"- seed {result.seed}" + (f"; real share cap {result.real_share:.0%} = {result.real_cap} examples"
                                       if result.real_share is not None else "")
             + (f"; at most {result.mode_cap} per mode" if result.mode_cap is not None else ""),
             *([f"- {result.coverage}"] if result.coverage else []), "",
             "| | examples | real | modes touched | normalised score | real data in missing modes "
             "| share distance to reference |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, f in (("before", b), ("after", a)):
        lines.append(f"| {name} | {f.n} | {'' if f.real is None else f.real} | {f.n_modes} | "
                     f"{f.score_normalized:.3f} | {pct(f.reference_share_missing)} | "
                     f"{'' if f.share_distance is None else f'{f.share_distance:.3f}'} |")
    return "\n".join(lines) + "\n"


def seeds_summary(result: SeedsResult) -> str:
    excluded = ", ".join(f"{k}: {v}" for k, v in sorted(result.excluded.items())) or "none"
    """The report's coverage line of the same mode space (same counts, same words), then the seeds."""
    coverage = result.coverage or (f"{result.n_lacking} of {result.n_modes} real modes lacking "
                                   f"({result.reference_share_lacking:.1%} of the real data)")
    return (f"{coverage}; {sum(len(m.seeds) for m in result.modes)} seeds for {len(result.modes)} modes "
            f"(none for modes too small to test); reference rows excluded as possibly synthetic: {excluded_text(result) or excluded}")


def excluded_text(result: SeedsResult, limit: int = 5) -> str:
    """The excluded reference rows by reason, with their first ids so they can be checked (each mode's
    line lists its own, `excluded_rows` every one)."""
    by_reason: dict[str, list[str]] = {}
    for row in result.excluded_rows:
        key = row.reason.split("=")[0] + "=..." if "=" in row.reason else row.reason
        by_reason.setdefault(key, []).append(row.id)
    return ", ".join(f"{reason}: {len(ids)} (" + ", ".join(ids[:limit])
                     + (f", and {len(ids) - limit} more" if len(ids) > limit else "") + ")"
                     for reason, ids in sorted(by_reason.items()))
