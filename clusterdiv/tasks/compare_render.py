"""Views of a ComparisonReport: rich tables, markdown and a PNG chart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clusterdiv.modes.cluster import NOISE
from clusterdiv.reports.markdown import md_text
from clusterdiv.tasks.compare import ComparisonReport, PairwiseTest, Representation

FLAGGED_ROWS = 5  # over/under-represented clusters shown per batch


def _ci(ci: Any) -> str:
    return f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else ""


def _metric_cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    ci = entry.get("ci95")
    return f"{entry['value']:.4f}" + (f" [{_ci(ci)}]" if ci else "")


def _metric_names(report: ComparisonReport) -> list[str]:
    return list(dict.fromkeys(name for b in report.batches for name in b.metrics))


def _headline(report: ComparisonReport) -> str:
    ref = ""
    if report.reference:
        ref = f" plus {report.reference['n_samples']} reference examples"
    return (f"{len(report.batches)} batches compared at {report.sample_size} examples each{ref}, in one shared "
            f"clustering ({report.clustering_method}: {report.n_shared_clusters} clusters + "
            f"{report.n_shared_noise} noise points); seed {report.seed}")


def _ranked(report: ComparisonReport) -> list[Any]:
    return sorted(report.batches, key=lambda b: b.rank)


def _flag_caption(report: ComparisonReport, rep: Representation) -> str:
    """How the flags were decided, and how many modes were too small to test (not flagged, not shown)."""
    if not report.flag_test:
        return ""
    return report.flag_test + f"; {len(rep.untestable)} modes too small to test"


def _flagged(rep: Representation) -> Iterator[Any]:
    return iter([c for c in rep.clusters if c.flag not in ("balanced", "untestable")][:FLAGGED_ROWS])


def _flagged_sections(report: ComparisonReport) -> Iterator[tuple[str, Representation, list[Any], str]]:
    """(title, representation, its flagged clusters, the comparison's column name) for each non-empty one."""
    for title, reps in (("versus the other batches", report.representation),
                        ("versus the reference", report.versus_reference)):
        for rep in reps:
            rows = list(_flagged(rep))
            if rows:
                yield title, rep, rows, "others" if rep.versus == "others" else "reference"


def _pair_rows(tests: list[PairwiseTest]) -> list[tuple[str, ...]]:
    rows = []
    for p in tests:
        row = (f"{p.a} vs {p.b}", f"{p.difference:+.3f}", f"{p.p_value:.3f}", f"{p.p_adjusted:.3f}",
               "yes" if p.significant else "no")
        rows.append(row if p.cis_overlap is None else (*row, "yes" if p.cis_overlap else "no"))
    return rows


def _test_sections(report: ComparisonReport) -> Iterator[tuple[str, str, list[tuple[str, ...]], tuple[str, ...]]]:
    """(title, method, rows, columns) of each pairwise test table: score_normalized, then Vendi if computed."""
    columns = ("pair", "difference", "p", "p (Holm)", "significant")
    yield ("Pairwise differences in score_normalized", report.significance_method, _pair_rows(report.pairwise),
           (*columns, "CIs overlap"))
    if report.vendi_pairwise:
        yield ("Pairwise differences in Vendi (same sample size)", report.vendi_significance_method or "",
               _pair_rows(report.vendi_pairwise), columns)


def render_comparison_table(report: ComparisonReport, console: Any) -> None:
    from rich.table import Table

    console.print(_headline(report), highlight=False)
    table = Table(title="Diversity, most diverse first")
    for col in ("rank", "batch", "score_normalized [95% CI]", "score [95% CI]", "modes", "scored", "failed"):
        table.add_column(col, justify="left" if col == "batch" else "right", no_wrap=col == "batch")
    for b in _ranked(report):
        table.add_row(str(b.rank), b.name, f"{b.score_normalized:.3f} [{_ci(b.ci95_normalized)}]",
                      f"{b.score:.3f} [{_ci(b.ci95)}]", f"{b.n_modes} ({b.n_clusters}+{b.n_noise} noise)",
                      str(b.n_samples), str(b.n_failed))
    console.print(table)
    names = _metric_names(report)
    if names:
        mt = Table(title="Set metrics (value [95% CI])")
        mt.add_column("metric", no_wrap=True)
        for b in report.batches:
            mt.add_column(b.name, justify="right")
        for name in names:
            mt.add_row(name, *(_metric_cell(b.metrics.get(name)) for b in report.batches))
        console.print(mt)
    for title, method, rows, columns in _test_sections(report):
        pt = Table(title=title, caption=method)
        for col in columns:
            pt.add_column(col)
        for row in rows:
            pt.add_row(*row)
        console.print(pt)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    for title, rep, rows, other in _flagged_sections(report):
        rt = Table(title=f"{rep.batch}: clusters over/under-represented {title}",
                   caption=_flag_caption(report, rep))
        for col in ("cluster", "name", rep.batch, other, "flag", "criteria"):
            rt.add_column(col)
        for c in rows:
            rt.add_row(str(c.cluster_id), c.name, f"{c.batch_share:.1%}", f"{c.reference_share:.1%}", c.flag,
                       c.criteria_summary)
        console.print(rt)
    if rows := _label_rows(report):
        lt = Table(title="Largest shared clusters: gold labels (--label-field)")
        for col in ("cluster", "size", "labels (purity)"):
            lt.add_column(col)
        for row in rows:
            lt.add_row(*row)
        console.print(lt)
    t = report.timings
    console.print(f"[dim]total {t.get('total_s', 0):.1f}s | model {report.config.model} | "
                  f"prompt {report.config.prompt_sha256[:12]}[/dim]")


def render_comparison_markdown(report: ComparisonReport) -> str:
    lines = ["# clusterdiv comparison", "", _headline(report), "",
             "| rank | batch | score_normalized | 95% CI | score | 95% CI | modes | clusters | noise | scored | failed |",
             "| ---: | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for b in _ranked(report):
        lines.append(f"| {b.rank} | {md_text(b.name)} | {b.score_normalized:.3f} | {_ci(b.ci95_normalized)} | {b.score:.3f} | "
                     f"{_ci(b.ci95)} | {b.n_modes} | {b.n_clusters} | {b.n_noise} | {b.n_samples} | {b.n_failed} |")
    names = _metric_names(report)
    if names:
        lines += ["", "## Set metrics (value [95% CI])", "",
                  "| metric | " + " | ".join(md_text(b.name) for b in report.batches) + " |",
                  "| --- |" + " ---: |" * len(report.batches)]
        for name in names:
            lines.append(f"| {md_text(name)} | " + " | ".join(_metric_cell(b.metrics.get(name)) for b in report.batches) + " |")
    for title, method, rows, columns in _test_sections(report):
        lines += ["", f"## {title}", "", f"_{method}_", "", "| " + " | ".join(columns) + " |",
                  "| --- | ---: | ---: | ---: |" + " --- |" * (len(columns) - 4)]
        lines += ["| " + " | ".join(md_text(cell) for cell in row) + " |" for row in rows]
    lines += [f"\n> warning: {md_text(warning)}" for warning in report.warnings]
    for title, rep, rows, other in _flagged_sections(report):
        lines += ["", f"## {md_text(rep.batch)}: clusters over/under-represented {title}", "",
                  *([f"_{md_text(caption)}_", ""] if (caption := _flag_caption(report, rep)) else []),
                  f"| cluster | name | {md_text(rep.batch)} | {other} | flag | criteria |",
                  "| ---: | --- | ---: | ---: | --- | --- |"]
        lines += [f"| {c.cluster_id} | {md_text(c.name)} | {c.batch_share:.1%} | {c.reference_share:.1%} | {c.flag} | "
                  f"{md_text(c.criteria_summary)} |" for c in rows]
    if label_rows := _label_rows(report):
        lines += ["", "## Largest shared clusters: gold labels", "", "| cluster | size | labels (purity) |",
                  "| ---: | ---: | --- |", *(f"| {c} | {n} | {md_text(text)} |" for c, n, text in label_rows)]
    return "\n".join(lines) + "\n"


def _label_rows(report: ComparisonReport) -> list[tuple[str, str, str]]:
    """(cluster, size, labels) of the largest shared clusters when the batches were read with gold
    labels: whether a mode is one intent or several, across every batch's members."""
    from clusterdiv.reports.report import labels_text

    return [(str(c.cluster_id), str(c.size), labels_text(c)) for c in report.clusters if c.labels]


def plot_comparison(report: ComparisonReport, path: Path, *, top: int = 8) -> Path:
    """Left: score_normalized with 95% CIs. Right: each batch's shares of the largest shared clusters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = _ranked(report)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.6 * len(batches) + 2.6),
                                      gridspec_kw={"width_ratios": [1, 1.6]})
    y = list(range(len(batches)))
    values = [b.score_normalized for b in batches]
    errors = [[v - b.ci95_normalized[0] for v, b in zip(values, batches, strict=True)],
              [b.ci95_normalized[1] - v for v, b in zip(values, batches, strict=True)]]
    left.errorbar(values, y, xerr=errors, fmt="o", color="tab:blue", capsize=4)
    left.set_yticks(y, [b.name for b in batches])
    left.invert_yaxis()
    left.set_xlabel("score_normalized (95% CI)")
    left.set_title("Diversity at the same sample size")
    left.grid(alpha=0.3, axis="x")

    shown = [c.cluster_id for c in report.clusters[:top]]
    label_of = {c.cluster_id: f"cluster {c.cluster_id}: {c.name}" if c.name else f"cluster {c.cluster_id}"
                for c in report.clusters[:top]}  # the mode's extractive name, as the tables give it
    cmap = plt.get_cmap("tab10")
    for i, b in enumerate(batches):
        counts = report.cluster_counts.get(b.name, {})
        total = sum(counts.values()) or 1
        start = 0.0
        segments = [(label_of[c], counts.get(c, 0) / total, cmap(k % 10)) for k, c in enumerate(shown)]
        rest = sum(v for c, v in counts.items() if c not in shown and c != NOISE) / total
        segments += [("other clusters", rest, "lightgrey"), ("noise", counts.get(NOISE, 0) / total, "white")]
        for label, share, color in segments:
            right.barh(i, share, left=start, color=color, edgecolor="grey", linewidth=0.4,
                       label=label if i == 0 else None)
            start += share
    right.set_yticks(y, [b.name for b in batches])
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("share of the batch")
    right.set_title("Largest shared clusters")
    right.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
