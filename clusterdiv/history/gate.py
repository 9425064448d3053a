"""The CI gate: a scored batch against its dataset's thresholds and recent history.

Exit codes of `clusterdiv check`: 0 every rule met, 3 a threshold or drop rule breached,
2 bad input (including a dataset with no rules: a gate that silently passes a typo is worse than
none), 1 any other error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from clusterdiv.history.models import MetricRecord, RunRecord, Tracking
from clusterdiv.history.trend import adverse_change, baseline_of, breach_reason
from clusterdiv.reports.markdown import md_code, md_text

EXIT_BREACH = 3


class Check(BaseModel):
    metric: str
    kind: Literal["threshold", "drop"]
    value: float | None
    ci95: tuple[float, float] | None = None
    rule: str
    ok: bool
    reason: str


class GateResult(BaseModel):
    dataset: str
    batch_id: str
    run_id: int | None = None
    owner: str | None = None
    passed: bool
    checks: list[Check]
    previous_runs: int

    @property
    def breaches(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def drop_metrics(tracking: Tracking) -> list[str]:
    """Drops are checked for the headline normalised score and every metric that has a rule."""
    return ["score_normalized", *(m for m in tracking.thresholds if m != "score_normalized")]


def evaluate(values: dict[str, MetricRecord], tracking: Tracking, previous: Sequence[RunRecord], *,
             batch_id: str) -> GateResult:
    checks: list[Check] = []
    for metric, rule in tracking.thresholds.items():
        record = values.get(metric)
        value = record.value if record else None
        reason = breach_reason(metric, value, rule)
        checks.append(Check(
            metric=metric, kind="threshold", value=value, ci95=record.ci95 if record else None,
            rule=rule.describe(), ok=reason is None,
            reason=reason or f"{metric} = {value:.4g} meets {rule.describe()}",
        ))
    if tracking.drop_share is not None:
        window = tracking.drop_window
        for metric in drop_metrics(tracking):
            record = values.get(metric)
            value = record.value if record else None
            base = baseline_of([r.value(metric) for r in previous], window)
            rule = f"drop <= {tracking.drop_share:.0%} (median of {window})"
            if base is None or value is None:
                checks.append(Check(metric=metric, kind="drop", value=value, ci95=record.ci95 if record else None,
                                    rule=rule, ok=True, reason=f"{metric}: no earlier runs to compare with"))
                continue
            change = adverse_change(metric, value, base) or 0.0
            ok = change <= tracking.drop_share
            n_base = min(window, sum(1 for r in previous if r.value(metric) is not None))
            verdict = (f"{metric} moved {change:.0%} towards less diversity vs the median "
                       f"{base:.4g} of the previous {n_base} runs ({value:.4g} now)")
            reason = (f"{verdict}; allowed {tracking.drop_share:.0%}" if not ok
                      else f"{metric} = {value:.4g}, median of previous {n_base} runs {base:.4g}")
            checks.append(Check(metric=metric, kind="drop", value=value, ci95=record.ci95 if record else None,
                                rule=rule, ok=ok, reason=reason))
    return GateResult(dataset=tracking.dataset, batch_id=batch_id, owner=tracking.owner,
                      passed=all(c.ok for c in checks), checks=checks, previous_runs=len(previous))


def render_summary_markdown(result: GateResult, *, source: str | None = None) -> str:
    """A block for $GITHUB_STEP_SUMMARY (GitHub renders it on the workflow run page)."""
    status = "passed" if result.passed else f"FAILED ({len(result.breaches)} breached)"
    icon = ":white_check_mark:" if result.passed else ":x:"
    lines = [
        f"## {icon} clusterdiv check {md_code(result.dataset)}: {status}",
        "",
        f"- batch {md_code(result.batch_id)}" + (f" from {md_code(source)}" if source else "")
        + (f", recorded as run {result.run_id}" if result.run_id is not None else ", not recorded"),
        f"- owner: {md_text(result.owner or '(none)')}; compared with {result.previous_runs} earlier runs",
        "",
        "| metric | value | 95% CI | rule | status |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for c in result.checks:
        value = "n/a" if c.value is None else f"{c.value:.4f}"
        ci = f"{c.ci95[0]:.3f}-{c.ci95[1]:.3f}" if c.ci95 else ""
        lines.append(f"| {md_text(c.metric)} | {value} | {ci} | {md_text(c.rule)} | {'ok' if c.ok else '**breach**'} |")
    if result.breaches:
        lines += ["", "### Why it failed", ""]
        lines += [f"- {md_text(c.reason)}" for c in result.breaches]
    return "\n".join(lines) + "\n"


__all__ = ["EXIT_BREACH", "Check", "GateResult", "evaluate", "render_summary_markdown"]
