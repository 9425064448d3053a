"""Views of a dataset's history: rich tables with sparklines, markdown, JSON and a PNG chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clusterdiv.history.models import RunRecord, Tracking
from clusterdiv.history.trend import MetricTrend, sparkline
from clusterdiv.reports.markdown import md_code, md_text


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _rule_text(trend: MetricTrend) -> str:
    return trend.threshold.describe() if trend.threshold else ""


def _last_change(trend: MetricTrend) -> str:
    last = trend.points[-1] if trend.points else None
    if last is None or last.adverse_change is None:
        return ""
    # adverse_change > 0 is worse; show it as a signed "towards less diversity" share
    return f"{last.adverse_change:+.0%}"


def _flags(run: RunRecord, trends: Sequence[MetricTrend]) -> str:
    """Compact per-run summary; the full reasons are printed below the tables."""
    points = [(t.metric, next(p for p in t.points if p.run_id == run.id)) for t in trends]
    breaches = [m for m, p in points if p.breach]
    drops = [m for m, p in points if p.drop]
    parts = []
    if breaches:
        parts.append("breach: " + ", ".join(breaches))
    if drops:
        parts.append("drop: " + (", ".join(drops) if len(drops) <= 2 else f"{', '.join(drops[:2])} +{len(drops) - 2}"))
    return "; ".join(parts)


def flag_lines(trends: Sequence[MetricTrend], drop_share: float, window: int) -> list[str]:
    lines = []
    for t in trends:
        for p in t.points:
            if p.breach:
                lines.append(f"run {p.run_id} (batch {p.batch_id}): {p.breach}")
            if p.drop:
                lines.append(
                    f"run {p.run_id} (batch {p.batch_id}): {t.metric} {p.value:.4g} moved {p.adverse_change:.0%} "
                    f"towards less diversity vs the median {p.baseline:.4g} of up to {window} earlier runs "
                    f"(flagged above {drop_share:.0%})")
    return lines


def render_history_table(console: Any, *, dataset: str, tracking: Tracking | None, runs: Sequence[RunRecord],
                         trends: Sequence[MetricTrend], drop_share: float, window: int) -> None:
    from rich.table import Table
    from rich.text import Text

    owner = tracking.owner if tracking and tracking.owner else "(no owner)"
    console.print(f"[bold]{dataset}[/bold]  owner {owner}  {len(runs)} runs  "
                  f"drops flagged above {drop_share:.0%} vs the median of the previous {window} runs",
                  highlight=False)
    table = Table(title="Metrics over runs (oldest -> newest; red = breach, yellow = drop)")
    # "less diverse by": the latest run's move towards less diversity vs the median before it
    table.add_column("metric", no_wrap=True)
    table.add_column("trend", no_wrap=True)
    for col in ("first", "last", "median before", "less diverse by"):
        table.add_column(col, justify="right")
    table.add_column("rule")
    table.add_column("breaches", justify="right")
    table.add_column("drops", justify="right")
    for t in trends:
        spark = Text()
        for char, p in zip(sparkline(t.values), t.points, strict=True):
            spark.append(char, style="bold red" if p.breach else "yellow" if p.drop else "cyan")
        last = t.points[-1] if t.points else None
        table.add_row(t.metric, spark, _fmt(t.points[0].value if t.points else None),
                      _fmt(last.value if last else None), _fmt(last.baseline if last else None),
                      _last_change(t), _rule_text(t), str(len(t.breaches)) or "", str(len(t.drops)))
    console.print(table)
    rt = Table(title="Runs")
    for col in ("run", "recorded (UTC)", "batch", "owner", "tags", "n", "score_normalized", "gate", "LLM spend",
                "flags"):
        rt.add_column(col, no_wrap=col in ("run", "batch"))
    for r in runs:
        rt.add_row(str(r.id), r.recorded_at.strftime("%Y-%m-%d %H:%M"), r.batch_id, r.owner or "",
                   ",".join(r.tags), str(r.n_samples or ""), _fmt(r.value("score_normalized")),
                   r.gate_status or "", r.spend(), _flags(r, trends))
    console.print(rt)
    for line in flag_lines(trends, drop_share, window):
        console.print(f"[yellow]flag[/yellow] {line}", highlight=False)


def render_history_markdown(*, dataset: str, tracking: Tracking | None, runs: Sequence[RunRecord],
                            trends: Sequence[MetricTrend], drop_share: float, window: int) -> str:
    owner = tracking.owner if tracking and tracking.owner else "(no owner)"
    lines = [f"## History of {md_code(dataset)}", "",
             f"owner {md_text(owner)}, {len(runs)} runs, drops flagged above {drop_share:.0%} vs the median of the "
             f"previous {window} runs", "",
             "| metric | trend | first | last | median before | less diverse by | rule | breaches | drops |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for t in trends:
        last = t.points[-1] if t.points else None
        lines.append(f"| {md_text(t.metric)} | `{sparkline(t.values)}` | {_fmt(t.points[0].value if t.points else None)} | "
                     f"{_fmt(last.value if last else None)} | {_fmt(last.baseline if last else None)} | "
                     f"{_last_change(t)} | {md_text(_rule_text(t))} | {len(t.breaches)} | {len(t.drops)} |")
    lines += ["", "| run | recorded (UTC) | batch | owner | tags | score_normalized | gate | LLM spend | flags |",
              "| ---: | --- | --- | --- | --- | ---: | --- | --- | --- |"]
    for r in runs:
        lines.append(f"| {r.id} | {r.recorded_at:%Y-%m-%d %H:%M} | {md_text(r.batch_id)} | {md_text(r.owner or '')} | "
                     f"{md_text(','.join(r.tags))} | {_fmt(r.value('score_normalized'))} | {r.gate_status or ''} | "
                     f"{md_text(r.spend())} | {md_text(_flags(r, trends))} |")
    return "\n".join(lines) + "\n"


def history_json(*, dataset: str, tracking: Tracking | None, runs: Sequence[RunRecord],
                 trends: Sequence[MetricTrend], drop_share: float, window: int) -> str:
    payload = {
        "dataset": dataset,
        "tracking": tracking.model_dump(mode="json") if tracking else None,
        "drop_share": drop_share, "window": window,
        "runs": [r.model_dump(mode="json") for r in runs],
        "trends": [t.model_dump(mode="json") for t in trends],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)


def plot_history(trends: Sequence[MetricTrend], path: Path, *, title: str) -> Path:
    """One panel per metric: values, rolling median, threshold lines, breaches (x) and drops (v)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [t for t in trends if any(v is not None for v in t.values)]
    if not shown:
        from clusterdiv.core.errors import InputError

        raise InputError("no metric values to chart")
    cols = 2 if len(shown) > 1 else 1
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 2.6 * rows), squeeze=False)
    for ax, t in zip(axes.flat, shown, strict=False):
        x = list(range(len(t.points)))
        ax.plot(x, [p.value for p in t.points], marker="o", ms=3, lw=1.4, color="tab:blue", label=t.metric)
        ax.plot(x, [p.baseline for p in t.points], ls=":", color="grey", lw=1, label="rolling median")
        if t.threshold and t.threshold.min is not None:
            ax.axhline(t.threshold.min, color="tab:red", ls="--", lw=0.9, label="min")
        if t.threshold and t.threshold.max is not None:
            ax.axhline(t.threshold.max, color="tab:red", ls="-.", lw=0.9, label="max")
        bx = [i for i, p in enumerate(t.points) if p.breach and p.value is not None]
        ax.scatter(bx, [t.points[i].value for i in bx], marker="x", s=60, color="tab:red", zorder=4, label="breach")
        dx = [i for i, p in enumerate(t.points) if p.drop]
        ax.scatter(dx, [t.points[i].value for i in dx], marker="v", s=50, color="orange", zorder=3, label="drop")
        ax.set_title(t.metric, fontsize=10)
        ax.set_xticks(x, [f"{p.run_id}:{p.batch_id[:8]}" for p in t.points], rotation=45, ha="right", fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    legend: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in {t.metric for t in shown}:
                legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.9, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
