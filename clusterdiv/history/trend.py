"""Trends over a dataset's runs: threshold breaches and drops against the rolling median.

A drop is measured in the direction that means *less diverse* for that metric (a fall in
score_normalized, a rise in self_bleu), relative to the median of the previous `window` runs.
The median, not the mean, so one bad batch does not lower the bar for the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from statistics import median

from pydantic import BaseModel, Field

from clusterdiv.history.models import HEADLINE_METRICS, RunRecord, Threshold, Tracking, direction

SPARK = "▁▂▃▄▅▆▇█"


class TrendPoint(BaseModel):
    run_id: int
    batch_id: str
    recorded_at: datetime
    value: float | None
    baseline: float | None = Field(description="median of the previous `window` runs' values")
    adverse_change: float | None = Field(description="relative move towards less diversity; > 0 is worse")
    breach: str | None = None
    drop: bool = False


class MetricTrend(BaseModel):
    metric: str
    threshold: Threshold | None = None
    points: list[TrendPoint]

    @property
    def values(self) -> list[float | None]:
        return [p.value for p in self.points]

    @property
    def breaches(self) -> list[TrendPoint]:
        return [p for p in self.points if p.breach]

    @property
    def drops(self) -> list[TrendPoint]:
        return [p for p in self.points if p.drop]


def breach_reason(metric: str, value: float | None, rule: Threshold | None) -> str | None:
    """Why `value` violates `rule`, in words; None when it does not (or there is no rule)."""
    if rule is None:
        return None
    if value is None:
        hint = " (reference metrics need --reference)" if metric in _reference_metrics() else ""
        return f"{metric} was not computed{hint}, so its rule {rule.describe()} cannot be met"
    if rule.min is not None and value < rule.min:
        return f"{metric} = {value:.4g} is below the minimum {rule.min:g}"
    if rule.max is not None and value > rule.max:
        return f"{metric} = {value:.4g} is above the maximum {rule.max:g}"
    return None


def _reference_metrics() -> set[str]:
    from clusterdiv.metrics.registry import metric_specs

    return {s.name for s in metric_specs() if s.needs_reference}


def adverse_change(metric: str, value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    rel = (value - baseline) / abs(baseline)
    sign = direction(metric)
    return abs(rel) if sign == 0 else -sign * rel


def baseline_of(previous: Sequence[float | None], window: int) -> float | None:
    known = [v for v in previous if v is not None][-window:]
    return float(median(known)) if known else None


def analyze(runs: Sequence[RunRecord], *, tracking: Tracking | None = None,
            metrics: Sequence[str] | None = None, drop_share: float | None = None,
            window: int | None = None) -> list[MetricTrend]:
    """One trend per metric over `runs` (oldest first), with breaches and drops marked.

    `drop_share`/`window` default to the dataset's tracking settings, else 0.2 and 5.
    """
    share = drop_share if drop_share is not None else (tracking.drop_share if tracking else None)
    share = 0.2 if share is None else share
    window = window or (tracking.drop_window if tracking else 5)
    rules = tracking.thresholds if tracking else {}
    if metrics is None:
        seen = dict.fromkeys(name for r in runs for name in r.metrics)
        metrics = [*(m for m in HEADLINE_METRICS if m in seen), *(m for m in seen if m not in HEADLINE_METRICS)]
        metrics += [m for m in rules if m not in metrics]
    trends = []
    for metric in metrics:
        values = [r.value(metric) for r in runs]
        points = []
        for i, run in enumerate(runs):
            base = baseline_of(values[:i], window)
            change = adverse_change(metric, values[i], base)
            points.append(TrendPoint(
                run_id=run.id, batch_id=run.batch_id, recorded_at=run.recorded_at, value=values[i],
                baseline=base, adverse_change=change,
                breach=breach_reason(metric, values[i], rules.get(metric)),
                drop=change is not None and change > share,
            ))
        trends.append(MetricTrend(metric=metric, threshold=rules.get(metric), points=points))
    return trends


def sparkline(values: Sequence[float | None]) -> str:
    """Eight-level bars scaled to the series' own range; a gap for missing values."""
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    lo, hi = min(known), max(known)
    span = hi - lo
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            out.append(SPARK[len(SPARK) // 2] if span == 0 else SPARK[round((v - lo) / span * (len(SPARK) - 1))])
    return "".join(out)
