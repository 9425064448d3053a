"""The report every command produces: one pydantic model, rendered as JSON, a table or markdown."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from clusterdiv.core.records import MIN_TO_CLUSTER, RepresentationInfo
from clusterdiv.reports.markdown import md_code, md_text
from clusterdiv.reports.sections import (
    CLUSTER_SHARES,
    ClusterShares,
    Drift,
    LabelCoverage,
    Lineage,
    MixBudget,
    TailAudit,
    mode_ref,
)

MIN_SAMPLES_FOR_INTERVAL = 3
"""Below this many scored samples the bootstrap intervals of the score are degenerate (a single
example always resamples to itself): they are reported as n/a, with a warning, not as zero-width."""


class ValueCount(BaseModel):
    value: str
    count: int


class ClusterSummary(BaseModel):
    cluster_id: int
    size: int
    share: float
    example_ids: list[str]
    criteria_summary: str
    top_values: dict[str, list[ValueCount]] = Field(default_factory=dict)
    # With --label-field: the mode's most common gold labels and the majority label's share of its
    # labelled members; left out of the JSON without labels, so unlabelled reports read as before.
    labels: list[ValueCount] | None = Field(default=None, exclude_if=lambda v: v is None)
    label_purity: float | None = Field(default=None, exclude_if=lambda v: v is None)
    name: str = ""  # the mode's extractive name (modes.names): its distinctive words


class FailureRecord(BaseModel):
    example_id: str
    reason: str


class Failures(BaseModel):
    count: int = 0
    reasons: list[FailureRecord] = Field(default_factory=list)


class SkippedInput(BaseModel):
    count: int = 0
    rows: list[dict[str, Any]] = Field(default_factory=list)


class Truncations(BaseModel):
    """Texts cut to `limit_chars` before the LLM saw them (the metrics still use the full text)."""

    count: int = 0
    limit_chars: int | None = None
    example_ids: list[str] = Field(default_factory=list, description="the first 20 truncated examples")


class EmbeddingTruncations(BaseModel):
    """Texts longer than the embedding model reads: it embedded their first `limit_tokens` word pieces
    only (counted with its tokenizer), so texts that share that opening are one point to the modes
    and the embedding metrics however they go on."""

    count: int = 0
    limit_tokens: int | None = None
    example_ids: list[str] = Field(default_factory=list, description="the first 20 truncated examples")


class SamplingStep(BaseModel):
    scored: int
    ci95_width: float | None = Field(description="width of score_normalized's 95% interval at this size")


class Sampling(BaseModel):
    """How many of the loaded examples the report was computed on, and how its interval treats that.

    Every number in a report (headline, modes, set metrics) is computed on the same `scored`
    examples; `population` is how many were loaded.
    """

    policy: Literal["all", "fixed", "auto"]
    population: int
    scored: int
    target_width: float | None = Field(default=None, description="auto: the interval width it grew the sample to")
    steps: list[SamplingStep] = Field(default_factory=list, description="auto: each sample size tried")
    note: str


def count_truncations(examples: Any, limit_chars: int) -> Truncations:
    cut = [e.id for e in examples if len(e.text) > limit_chars]
    return Truncations(count=len(cut), limit_chars=limit_chars, example_ids=cut[:20])


def count_embedding_truncations(examples: Any, cut: list[bool], limit_tokens: int) -> EmbeddingTruncations:
    """`cut[i]`: the embedding model read only part of `examples[i]` (`Embedder.truncated`)."""
    ids = [e.id for e, was_cut in zip(examples, cut, strict=True) if was_cut]
    return EmbeddingTruncations(count=len(ids), limit_tokens=limit_tokens if ids else None, example_ids=ids[:20])


def library_warnings(metrics: dict[str, Any]) -> list[str]:
    """What the metrics' libraries said while computing them (`details["warnings"]`, `core.capture`)."""
    return [str(w) for m in (metrics or {}).values() if isinstance(m, dict)
            for w in (m.get("details") or {}).get("warnings") or []]


def metric_warnings(metrics: dict[str, Any]) -> list[str]:
    """One line per set metric that is undefined (n/a) for this input, or whose interval is."""
    out = []
    for name, m in (metrics or {}).items():
        if not isinstance(m, dict) or "value" not in m:
            continue
        details = m.get("details") or {}
        out += library_warnings({name: m})
        if m.get("value") is None:
            out.append(f"{name} is n/a: {details.get('reason', 'undefined for this input')}")
        elif details.get("ci_skipped") and str(details["ci_skipped"]).startswith("n="):
            out.append(f"{name}: no interval, {details['ci_skipped']}")
    return out


# Below this k-NN precision against the reference, most of the batch lies off the real data. Real
# samples scored against real held-out data sit at 0.83-0.86 (eval/DOWNSTREAM.md); a weak generator's
# replace-recursion rounds 2-4 at 0.00-0.39, its temperature-1.0 one-shot batches at 0.40-0.47.
LOW_FIDELITY = 0.5


def fidelity_warning(metrics: dict[str, Any]) -> str | None:
    """The headline is reference-free: a weak generator's off-distribution text makes new modes and
    raises it. When the reference says most of the batch is off its manifold, say so next to it."""
    def value_of(name: str) -> float | None:
        m = (metrics or {}).get(name)
        return m.get("value") if isinstance(m, dict) else None

    value, coverage = value_of("precision"), value_of("coverage")
    if value is None or value >= LOW_FIDELITY:
        return None
    tail = f", and it covers {coverage:.0%} of the reference (coverage)" if coverage is not None else ""
    return (f"only {value:.0%} of the batch lies near the reference data (k-NN precision){tail}: the headline "
            "counts off-reference text as new modes, so here a higher score can mean noise, not coverage")


EXTRAPOLATION_LIMIT = 3
"""Past this many times the scored samples, the reference size is named in a warning. Chao et al. (2014,
Ecological Monographs 84:45), whose extrapolation the normalised score uses past n, find it reliable
up to about double or triple the sample; further out it tends to the estimated number of modes / m."""


def extrapolation_warning(report: Report) -> str | None:
    """A warning when score_normalized refers to a size far past the examples it was computed on."""
    n, m = report.n_samples, report.config.reference_size if report.config is not None else None
    if report.command != "score" or not n or m is None or m <= EXTRAPOLATION_LIMIT * n:
        return None
    return (f"score_normalized extrapolates from {n} scored samples to reference_size {m} ({m / n:.3g} times "
            f"as many): the extrapolation (Chao et al. 2014) is reliable up to about {EXTRAPOLATION_LIMIT} "
            "times the sample, so score more examples or compare at a smaller reference_size")


def skipped_line(count: int, rows: list[dict[str, Any]]) -> str:
    first = "; ".join(f"line {r.get('line')}: {r.get('reason')}" for r in rows[:3])
    return f"{count} malformed rows skipped (--skip-invalid), e.g. {first}"


def _ci_text(ci: Any) -> str:
    return f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "n/a"


class RunConfig(BaseModel):
    model: str
    model_fingerprint: str
    embedding_model: str
    embedding_fingerprint: str
    prompt_file: str
    prompt_sha256: str
    embedded_criteria: list[str]
    seed: int
    sample: int | Literal["auto", "all"] | None
    reference_size: int
    clustering: dict[str, Any]
    clustering_method: str
    clusterdiv_version: str
    engine: str = "local"  # where extraction and embedding ran (clusterdiv.engine); the same modes and headline


class Timings(BaseModel):
    """Measurements of this run; the only section that differs between two identical runs."""

    load_s: float = 0.0
    extract_s: float = 0.0
    embed_s: float = 0.0
    cluster_s: float = 0.0
    score_s: float = 0.0
    metrics_s: float = 0.0
    naming_s: float = 0.0  # the explorer's LLM cluster names (0 with extractive names: no call)
    total_s: float = 0.0
    llm_calls: int = 0
    llm_cache_hits: int = 0
    embedding_calls: int = 0
    embedding_cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Spend: litellm's price of the usage each provider reported (0 when every call was unpriced or
    # cached), the answered calls it could not price (a local server, an unknown model), and, for a
    # run that stopped at its budget, why and how many examples were left unasked (a rerun asks them).
    llm_cost_usd: float = 0.0
    llm_unpriced_calls: int = 0
    llm_stopped: str | None = None
    llm_not_asked: int = 0

    @property
    def spent(self) -> bool:
        """Whether there is any spend to show (a call made, or a run stopped at its budget)."""
        return bool(self.llm_calls or self.llm_stopped)

    def spend(self) -> str:
        """The spend in one phrase, for the renderers: tokens, cost, and where the run stopped."""
        cost = f"${self.llm_cost_usd:.4f}" if self.llm_cost_usd else "$0"
        if self.llm_unpriced_calls:
            cost += f" (+{self.llm_unpriced_calls} calls at unknown price)"
        text = f"tokens {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion, cost {cost}"
        if self.llm_stopped:
            text += (f"; the run {self.llm_stopped} after {self.llm_calls} calls: {self.llm_not_asked} "
                     "examples not asked (every answer paid for is cached; rerun to resume)")
        return text


class Report(BaseModel):
    """One report type for every command.

    `score` fills the headline fields; commands that do not cluster (e.g. `mix`) leave them None and
    fill their own section instead, so tools reading the JSON handle a single shape.
    """

    command: str = "score"
    source: str | None = None
    content_hash: str | None = None
    # Where the input's ids came from ("from the 'id' field", or "made up (content hash): ..." and why);
    # None for in-memory texts, and left out of their JSON.
    ids: str | None = Field(default=None, exclude_if=lambda v: v is None)
    n_input: int
    n_samples: int | None = None
    n_clusters: int | None = None
    n_noise: int | None = None
    n_modes: int | None = None
    score: float | None = None
    score_normalized: float | None = None
    ci95: tuple[float, float] | None = None
    ci95_normalized: tuple[float, float] | None = None
    normalization: str | None = None
    clusters: list[ClusterSummary] = Field(default_factory=list)
    failed: Failures = Field(default_factory=Failures)
    skipped: SkippedInput = Field(default_factory=SkippedInput)
    modes_from: RepresentationInfo | None = Field(
        default=None, description="the representation the modes were built from: text, criteria or both")
    metrics: dict[str, Any] = Field(default_factory=dict)
    tail_audit: TailAudit | None = None
    mix: MixBudget | None = None
    lineage: Lineage | None = None
    drift: Drift | None = None
    label_coverage: LabelCoverage | None = Field(  # left out of the JSON without --reference-label-field
        default=None, exclude_if=lambda v: v is None,
        description="coverage by the reference's labels (--reference-label-field; modes.labels)")
    config: RunConfig | None = None
    sampling: Sampling | None = None
    truncated: Truncations = Field(default_factory=Truncations)
    embedding_truncated: EmbeddingTruncations = Field(default_factory=EmbeddingTruncations)
    warnings: list[str] = Field(default_factory=list)
    timings: Timings = Field(default_factory=Timings)

    @model_validator(mode="after")
    def _undefined_is_na(self) -> Report:
        """Too few samples for an interval, undefined metrics, truncations: n/a and a warning each."""
        notes = list(self.warnings)
        n = self.n_samples
        if self.command == "score" and n is not None and 0 < n < MIN_TO_CLUSTER:
            notes.append(f"only {n} scored example{'s' if n != 1 else ''}: the clustering groups no fewer than "
                         f"{MIN_TO_CLUSTER} (below that each example is its own mode), so the score "
                         f"{self.score if self.score is not None else float('nan'):.3f} is set by the count, "
                         "not by the data's diversity: score more examples")
        if self.command == "score" and n is not None and n < MIN_SAMPLES_FOR_INTERVAL and (
                self.ci95 is not None or self.ci95_normalized is not None):
            self.ci95 = self.ci95_normalized = None
            notes.append(f"{n} scored sample{'s' if n != 1 else ''}: too few for the score's 95% intervals "
                         f"(n/a below {MIN_SAMPLES_FOR_INTERVAL})")
        notes += metric_warnings(self.metrics)
        if (fidelity := fidelity_warning(self.metrics)) is not None:
            notes.append(fidelity)
        if self.truncated.count:
            notes.append(f"{self.truncated.count} text(s) longer than {self.truncated.limit_chars} characters "
                         "were cut for the LLM (criteria come from the first part only)")
        if self.embedding_truncated.count:
            notes.append(f"{self.embedding_truncated.count} text(s) longer than the embedding model's "
                         f"{self.embedding_truncated.limit_tokens} word pieces were cut for it (their vectors, "
                         "and so their modes and the embedding metrics, come from the first part only)")
        if (extrapolation := extrapolation_warning(self)) is not None:
            notes.append(extrapolation)
        self.warnings = list(dict.fromkeys(notes))
        return self

    @property
    def cluster_shares(self) -> ClusterShares | None:
        """Per-mode shares of the batch vs the reference (`score --reference`), typed; None without one.

        Not a metric: it is kept under `metrics["cluster_shares"]` only so the JSON (and every report
        already written) keeps its shape; `metric_values` leaves it out."""
        raw = (self.metrics or {}).get(CLUSTER_SHARES)
        if not raw:
            return None
        return raw if isinstance(raw, ClusterShares) else ClusterShares.model_validate(raw)

    def metric_values(self) -> dict[str, Any]:
        """The set metrics proper, by name (everything in `metrics` but the shares section)."""
        return {name: m for name, m in (self.metrics or {}).items() if name != CLUSTER_SHARES}

    def to_json(self, *, indent: int | None = 2, exclude_timings: bool = False) -> str:
        data = self.model_dump(mode="json", exclude={"timings"} if exclude_timings else None)
        return json.dumps(data, indent=indent, ensure_ascii=False)


def labels_text(c: ClusterSummary) -> str:
    """A mode's top gold labels and purity in one cell: `book_flight 9, book_hotel 1 (purity 90%)`."""
    if c.labels is None:
        return ""
    counts = ", ".join(f"{vc.value} {vc.count}" for vc in c.labels)
    return counts + (f" (purity {c.label_purity:.0%})" if c.label_purity is not None else "")


def made_up_ids(report: Report) -> bool:
    """Whether the report's ids are content hashes, not the input's own: the table says so."""
    return bool(report.ids) and "made up" in report.ids  # type: ignore[operator]


def llm_used(report: Report) -> bool:
    """Whether an LLM (and so the prompt) took part in the run: a report names the model and prompt
    only then, so a raw-text run does not print a model it never called (issue 32)."""
    t = report.timings
    return report.modes_from is None or report.modes_from.kind != "text" or bool(t.llm_calls or t.llm_cache_hits)


def summary_header(report: Report) -> str:
    """The name of the column holding `criteria_summary`: the modes' most common criteria, or (raw-text
    modes, no criteria) one member's text and how many are like it."""
    return "example text" if report.modes_from is not None and report.modes_from.kind == "text" else "top criteria"


def shown_modes(shares: ClusterShares, top: int | None) -> tuple[list[Any], str | None]:
    """The shares table's rows (all with `top=None`) and, when some are left out, the line saying how
    many and how many of those are lacking, so no lacking mode is silently off the table."""
    rows = shares.clusters if top is None else shares.clusters[:top]
    hidden = shares.clusters[len(rows):]
    if not hidden:
        return rows, None
    lacking = sum(1 for r in hidden if r.flag in ("missing", "under"))
    return rows, (f"... and {len(hidden)} more modes ({lacking} of them lacking): rerun with --all-modes, "
                  "or read cluster_shares in --format json")


def render_markdown(report: Report, *, top: int = 10, all_modes: bool = False) -> str:
    labelled = any(c.labels is not None for c in report.clusters)
    lines = [
        "# clusterdiv report",
        "",
        f"- source: {md_code(report.source)}" if report.source else "- source: (in-memory texts)",
        *([f"- ids: {md_text(report.ids)}"] if report.ids else []),
        f"- samples scored: **{report.n_samples}** of {report.n_input} "
        f"({report.failed.count} failed extraction, {report.skipped.count} skipped on load)",
        f"- distinct modes: **{report.n_modes}** ({report.n_clusters} clusters + {report.n_noise} noise singletons)",
        f"- score (modes / samples): **{report.score:.3f}** (95% CI {_ci_text(report.ci95)})",
        f"- normalised score: **{report.score_normalized:.3f}** (95% CI {_ci_text(report.ci95_normalized)}); "
        f"{report.normalization}",
        f"- texts cut for the LLM: {report.truncated.count}"
        + (f" (longer than {report.truncated.limit_chars} characters)" if report.truncated.count else ""),
        *([f"- texts cut for the embedding model: {cut.count} (longer than {cut.limit_tokens} word pieces)"]
          if (cut := report.embedding_truncated).count else []),
        "- " + (f"model {md_code(report.config.model)}, " if llm_used(report) else "")
        + f"embeddings {md_code(report.config.embedding_model)}, "
        + (f"prompt sha256 `{report.config.prompt_sha256[:12]}`, " if llm_used(report) else "")
        + f"seed {report.config.seed}, clustering {report.config.clustering_method}",
        *([f"- {md_text(representation_line(report))}"] if report.modes_from is not None else []),
        *([f"- **{md_text(line)}**"] if (line := _coverage(report)) else []),  # issue 17: lead with what is missing
        *([f"- **{md_text(line)}**"] if (line := _label_coverage(report)) else []),  # issue 31 item 3
        "",
        "## Largest clusters" + (" (the batch clustered alone)" if report.cluster_shares is not None else ""),
        "",
        f"| cluster | size | share | {summary_header(report)} | example ids |" + (" labels (purity) |" if labelled else ""),
        "| ---: | ---: | ---: | --- | --- |" + (" --- |" if labelled else ""),
    ]
    for c in report.clusters[:top]:
        lines.append(
            f"| {c.cluster_id} | {c.size} | {c.share:.1%} | {md_text(c.criteria_summary)} | "
            f"{md_text(', '.join(c.example_ids))} |" + (f" {md_text(labels_text(c))} |" if labelled else "")
        )
    if report.metrics:
        lines += ["", "## Set metrics", "", "| metric | value | 95% CI | meaning |", "| --- | ---: | --- | --- |"]
        for name, m in report.metric_values().items():
            ci = m.get("ci95")
            ci_text = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else ""
            value = m.get("value")
            value_text = f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"
            lines.append(f"| {md_text(name)} | {value_text} | {ci_text} | {md_text(m.get('meaning', ''))} |")
    shares = report.cluster_shares
    if shares is not None:
        rows, more = shown_modes(shares, None if all_modes else top)
        lines += ["", "## Modes versus the reference (batch + reference clustered together: modes M0, M1, ...)", "",
                  *([f"_flags: {md_text(shares.flag_test)}_", ""] if shares.flag_test else []),
                  f"| mode | name | batch share | reference share | flag | q (lacking) | {summary_header(report)} |",
                  "| ---: | --- | ---: | ---: | --- | ---: | --- |"]
        for row in rows:
            lines.append(f"| {mode_ref(row.cluster_id)} | {md_text(row.name)} | {row.batch_share:.1%} | "
                         f"{row.reference_share:.1%} | {row.flag} | {_q_text(row.q_value)} | "
                         f"{md_text(row.criteria_summary)} |")
        if more:
            lines += ["", md_text(more)]
    if report.failed.count:
        lines += ["", f"## Failed extractions ({report.failed.count})", ""]
        lines += [f"- {md_code(f.example_id)}: {md_text(f.reason)}" for f in report.failed.reasons[:20]]
    if report.skipped.count:
        lines += ["", f"- {md_text(skipped_line(report.skipped.count, report.skipped.rows))}"]
    if report.warnings:
        lines += ["", "## Warnings", ""] + [f"- {md_text(w)}" for w in report.warnings]
    t = report.timings
    lines += [
        "",
        f"_timings: total {t.total_s:.1f}s (extract {t.extract_s:.1f}s, embed {t.embed_s:.1f}s, "
        f"cluster {t.cluster_s:.1f}s); LLM calls {t.llm_calls}, LLM cache hits {t.llm_cache_hits}, "
        f"embeddings computed {t.embedding_calls}, embedding cache hits {t.embedding_cache_hits}"
        + (f"; LLM {t.spend()}" if t.spent else "") + "_",
    ]
    return "\n".join(lines) + "\n"


def _q_text(q: float | None) -> str:
    """A q-value for a table: 3 significant digits; '-' where the mode was not tested."""
    return "-" if q is None else f"{q:.3g}"


def _label_coverage(report: Report) -> str | None:
    return None if report.label_coverage is None else report.label_coverage.line()


def _coverage(report: Report) -> str | None:
    from clusterdiv.reports.coverage import coverage_line

    return coverage_line(report.cluster_shares)


def representation_line(report: Report) -> str:
    """One line saying what the modes were built from, at what threshold, and every fallback."""
    r = report.modes_from
    if r is None:
        return ""
    if r.kind == "text":
        what = "raw-text embeddings (no LLM)"
    elif r.kind == "criteria":
        what = f"LLM criteria {r.embedded_criteria}"
    else:
        w = r.text_weight if r.text_weight is not None else 0.5
        what = f"text x {w:g} + LLM criteria {r.embedded_criteria} x {1 - w:g}"
    line = f"modes from {what}, cosine distance {r.distance_threshold:g}"
    if r.n_text_fallback:
        line += f"; {r.n_text_fallback} examples by their text alone (" + ", ".join(
            f"{k}: {v}" for k, v in r.fallback_reasons.items()) + ")"
    return line


def render_table(report: Report, console: Any, *, top: int = 10, all_modes: bool = False) -> None:
    """Rich terminal view: headline, largest clusters, metrics, failures, cost."""
    from rich.table import Table

    console.print(
        f"[bold]diversity score[/bold] {report.score:.3f} "
        f"(95% CI {_ci_text(report.ci95)})   "
        f"[bold]normalised[/bold] {report.score_normalized:.3f} (95% CI {_ci_text(report.ci95_normalized)})"
    )
    console.print(
        f"{report.n_modes} distinct modes = {report.n_clusters} clusters + {report.n_noise} noise singletons, "
        f"over {report.n_samples} samples ({report.failed.count} failed, {report.skipped.count} skipped, "
        f"{report.truncated.count} truncated"
        + (f", {report.embedding_truncated.count} cut for the embedding model" if report.embedding_truncated.count
           else "") + f"); {report.normalization}"
    )
    if report.modes_from is not None:
        console.print(representation_line(report), highlight=False)
    if line := _coverage(report):  # issue 17: lead with what is missing
        console.print(f"[bold]{line}[/bold]", highlight=False)
    if line := _label_coverage(report):  # issue 31 item 3: the same, per real label
        console.print(f"[bold]{line}[/bold]", highlight=False, soft_wrap=True)
    if made_up_ids(report):
        console.print(f"ids: {report.ids}", highlight=False, soft_wrap=True)
    labelled = any(c.labels is not None for c in report.clusters)
    table = Table(title="Largest clusters" + (" (the batch clustered alone)" if report.cluster_shares is not None
                                              else ""), show_lines=False)
    for col, justify in (("cluster", "right"), ("size", "right"), ("share", "right"),
                         (summary_header(report), "left"), ("example ids", "left"),
                         *((("labels (purity)", "left"),) if labelled else ())):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in report.clusters[:top]:
        table.add_row(str(c.cluster_id), str(c.size), f"{c.share:.1%}", c.criteria_summary,
                      ", ".join(c.example_ids[:3]), *((labels_text(c),) if labelled else ()))
    console.print(table)
    if report.metrics:
        mt = Table(title="Set metrics")
        for col in ("metric", "value", "95% CI", "meaning"):
            mt.add_column(col)
        for name, m in report.metric_values().items():
            ci = m.get("ci95")
            value = m.get("value")
            mt.add_row(name, f"{value:.4f}" if isinstance(value, (int, float)) else "n/a",
                       f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "", m.get("meaning", ""))
        console.print(mt)
    shares = report.cluster_shares
    if shares is not None:
        rows, more = shown_modes(shares, None if all_modes else top)
        st = Table(title="Modes versus the reference (batch + reference clustered together; most discrepant first)",
                   caption=shares.flag_test or None)
        for col in ("mode", "name", "batch", "reference", "flag", "q (lacking)", summary_header(report)):
            st.add_column(col)
        for row in rows:
            st.add_row(mode_ref(row.cluster_id), row.name, f"{row.batch_share:.1%}", f"{row.reference_share:.1%}",
                       row.flag, _q_text(row.q_value), row.criteria_summary)
        console.print(st)
        if more:
            console.print(more, highlight=False, soft_wrap=True)
    if report.failed.count:
        console.print(f"[yellow]{report.failed.count} examples failed extraction[/yellow], e.g. "
                      + "; ".join(f"{f.example_id}: {f.reason}" for f in report.failed.reasons[:3]))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    t = report.timings
    console.print(
        f"[dim]total {t.total_s:.1f}s | LLM calls {t.llm_calls} (cache hits {t.llm_cache_hits}) | "
        f"embeddings computed {t.embedding_calls} (cache hits {t.embedding_cache_hits})"
        + (f" | model {report.config.model} | prompt {report.config.prompt_sha256[:12]}" if llm_used(report) else "")
        + "[/dim]"
    )
    print_spend(t, console)


def print_spend(t: Timings, console: Any) -> None:
    """The LLM spend under a table; a run that stopped at its budget says so in colour."""
    if t.spent:
        from rich.markup import escape

        console.print(f"[{'yellow' if t.llm_stopped else 'dim'}]LLM {escape(t.spend())}[/]", highlight=False,
                      soft_wrap=True)
