"""Terminal (rich) and markdown views of the anchoring sections of a `Report`.

Each view leads with the line a reader must not miss: an uncovered tail entry, a recursion-seeded
share, a stale verdict, a synthetic-only mode. Details follow in tables. The JSON output is the
report itself (`Report.to_json`), so nothing here is needed to read results programmatically.

Each section (`clusterdiv.reports.sections`: `TailAudit`, `MixBudget`, `Lineage`, `Drift`) has one renderer of
each kind, reading its attributes: `HEADLINES[name]`, `_MD[name]` (markdown) and `RICH[name]` (terminal).
"""

from __future__ import annotations

from typing import Any

from clusterdiv.reports.markdown import md_code, md_text
from clusterdiv.reports.report import Report, print_spend
from clusterdiv.reports.sections import Drift, Lineage, MixBudget, Neighbour, TailAudit

SECTIONS = ("tail_audit", "mix", "lineage", "drift")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ids(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" (+{len(ids) - limit})" if len(ids) > limit else "")


# ---------------------------------------------------------------- headlines (shared by both views)


def _tail_headlines(s: TailAudit) -> list[tuple[str, str]]:
    lines = []
    if s.n_uncovered:
        evidence = ("no example" if s.evidence_floor <= 1
                    else f"fewer than {s.evidence_floor} matching examples (the evidence floor)")
        lines.append(("red", f"UNCOVERED: {s.n_uncovered} of {s.n_entries} tail entries have {evidence} "
                             f"in the batch: {', '.join(s.uncovered)}"))
    if s.n_undecided:
        lines.append(("red", f"UNDECIDED: {s.n_undecided} of {s.n_entries} tail entries have no seeds and the "
                             f"LLM judge is not trusted, so nothing can vouch for them: {', '.join(s.undecided)}"))
    if s.n_under:
        lines.append(("yellow", f"UNDER-COVERED: {s.n_under} entries below min count {s.min_count} or "
                                f"min share {s.min_share:.1%}: {', '.join(s.under)}"))
    if not lines:
        lines.append(("green", f"all {s.n_entries} tail entries are covered (min count {s.min_count}, "
                               f"min share {s.min_share:.1%})"
                      + (" by the embedding rule alone: the LLM judge is not trusted" if s.judge_trusted is False
                         else "")))
    if s.judge_trusted is False:
        lines.append(("yellow", f"LLM judge not trusted: {s.judge_trust_reason}"))
    return lines


def _mix_headlines(s: MixBudget) -> list[tuple[str, str]]:
    o = s.overall
    lines = []
    if s.dominated:
        lines.append(("red", f"SYNTHETIC DOMINATES {len(s.dominated)} of {s.n_groups} groups "
                             f"(> {s.dominance_threshold:.0%} synthetic): {_ids(s.dominated, 8)}"))
    colour = {"on_target": "green", "no_target": "white"}.get(s.status, "yellow")
    target = "" if s.target_real_share is None else f" vs target {s.target_real_share:.0%}"
    lines.append((colour, f"real share {o.real_share:.1%} by count, {o.real_token_share:.1%} by tokens"
                          f"{target}: {s.status.replace('_', ' ')}; {s.to_reach_target}"))
    return lines


def _lineage_headlines(s: Lineage) -> list[tuple[str, str]]:
    colour = "red" if s.recursion_seeded else "green"
    evidence = ", ".join(f"{k} {v}" for k, v in sorted(s.by_evidence.items())) or "no evidence"
    lines = [(colour, f"RECURSION-SEEDED: {s.recursion_seeded} of {s.n_batch} ({s.share:.1%}) batch "
                      f"examples copy or paraphrase earlier synthetic data ({evidence})")]
    if s.max_chain_depth and s.max_chain_depth >= 2:
        lines.append(("yellow", f"declared lineage: synthetic chains up to {s.max_chain_depth} generations"))
    return lines


def _drift_headlines(s: Drift) -> list[tuple[str, str]]:
    colour = {"fresh": "green", "drifting": "yellow", "stale": "red"}[s.verdict]
    lines = [(colour, f"{s.verdict.upper()}: {'; '.join(s.reasons)}")]
    if s.expires_after and not s.expired:
        lines.append(("white", f"expires after {s.expires_after} ({s.days_left} days left as of {s.as_of})"))
    return lines


HEADLINES = {"tail_audit": _tail_headlines, "mix": _mix_headlines, "lineage": _lineage_headlines,
             "drift": _drift_headlines}
TITLES = {"tail_audit": "Tail audit", "mix": "Mix budget", "lineage": "Recursion guard", "drift": "Shelf life"}


# ---------------------------------------------------------------- markdown


def _md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "-" * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    return (["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
            + ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows])


def _md_tail(s: TailAudit) -> list[str]:
    rows = [[e.name, e.flag.upper() if e.flag != "ok" else "ok", str(e.count), _pct(e.share),
             "-" if e.llm_count is None else str(e.llm_count),
             "-" if e.embedding_count is None else str(e.embedding_count), e.decided_by,
             str(e.n_seeds), _num(e.threshold, 2), _ids(e.example_ids)] for e in s.entries]
    out = _md_table(["entry", "flag", "count", "share", "llm yes", "embedding", "decided by", "seeds",
                     "threshold", "example ids"], rows, "llrrrrlrrl")
    out += ["", f"- tail: {s.tail_source}", f"- policy `{s.policy}`: {s.policy_meaning}",
            f"- calibration: {s.calibration}", f"- prefilter: {s.prefilter}",
            *([f"- judge: {'trusted' if s.judge_trusted else 'NOT trusted'}: {s.judge_trust_reason}; "
               f"controls: {s.judge_controls}"] if s.judge_trusted is not None else []),
            f"- cost: {s.judgements} LLM judgements of {s.judgements_without_prefilter} possible "
            f"({s.llm_calls} calls, {s.llm_cache_hits} cache hits, {s.llm_failures} failures); "
            f"judge `{s.judge_model}`, embeddings `{s.embedding_model}`"]
    out += [f"- note: {n}" for n in s.notes]
    return out


def _md_mix(s: MixBudget) -> list[str]:
    o = s.overall
    out = _md_table(["", "examples", "real", "synthetic", "real share", "real tokens", "synthetic tokens",
                     "real token share"],
                    [["overall", str(o.n), str(o.real), str(o.synthetic), _pct(o.real_share),
                      str(o.real_tokens), str(o.synthetic_tokens), _pct(o.real_token_share)]],
                    "lrrrrrrr")
    out += ["", f"Groups: {s.group_by}", ""]
    rows = [[g.group, g.flag, str(g.n), _pct(g.share_of_mix), str(g.real), str(g.synthetic),
             _pct(g.synthetic_share), _pct(1 - g.real_token_share if g.n else None), g.summary]
            for g in s.groups]
    out += _md_table(["group", "flag", "examples", "of mix", "real", "synthetic", "synthetic share",
                      "synthetic token share", "summary"], rows, "llrrrrrrl")
    values = ", ".join(f"{k} ({v})" for k, v in s.source_values.items())
    out += ["", f"- source field `{s.source_field}`: {values}; real = {', '.join(s.real_values)}",
            f"- tokens: {s.token_rule}"]
    return out


def _md_lineage(s: Lineage) -> list[str]:
    out = _md_table(["round", "examples", "recursion-seeded", "share", "evidence"],
                    [[r.round, str(r.n), str(r.recursion_seeded), _pct(r.share),
                      ", ".join(f"{k} {v}" for k, v in sorted(r.by_evidence.items()))] for r in s.rounds],
                    "lrrrl")
    against = ", ".join(f"{a['source']} ({a['n']})" for a in s.against)
    real = f"{s.real['source']} ({s.real['n']})" if s.real else "none (closer-than-real check off)"
    out += ["", f"- earlier synthetic: {against}; real: {real}",
            f"- rule: {s.rule}",
            f"- embedding threshold {s.threshold:.3f}: {s.calibration}",
            f"- near duplicate: {s.shingle_size}-character shingle Jaccard >= {s.near_dup_jaccard}",
            f"- exact copies of real examples (not counted as recursion): {s.copies_of_real}"]
    if s.flagged:
        out += ["", "### Flagged examples", ""]
        out += _md_table(["id", "round", "evidence", "nearest synthetic", "nearest real"],
                         [[f.id, f.round, "; ".join(f.reasons),
                           _neighbour(f.nearest_synthetic), _neighbour(f.nearest_real)]
                          for f in s.flagged[:30]])
    return out


def _neighbour(n: Neighbour | None) -> str:
    return "-" if not n else f"{n.id} ({n.similarity:.3f})"


def _md_drift(s: Drift) -> list[str]:
    out = _md_table(["indicator", "value", "status", "fresh if", "stale if", "meaning"],
                    [[i.name, _num(i.value), i.status, i.fresh_if, i.stale_if, i.meaning]
                     for i in s.indicators], "lrllll")
    out += ["", f"- batch {s.n_batch} vs fresh reference {s.reference} ({s.n_reference}); "
                f"embeddings `{s.embedding_model}`, seed {s.seed}",
            f"- clustering: {s.clustering or 'skipped'}"
            + (f"; share TV {s.share_tv:.3f} (null {s.share_tv_null:.3f})" if s.share_tv is not None
               else ""),
            *([f"- mode flags: {s.flag_test}"] if s.flag_test else []),
            f"- expires after: {s.expires_after or 'not set'}" + (" (EXPIRED)" if s.expired else "")]
    out += [f"- note: {n}" for n in s.notes]
    if s.shifts:
        out += ["", "### Largest per-mode share shifts", ""]
        out += _md_table(["mode", "batch share", "reference share", "shift", "flag", "criteria"],
                         [[str(r.cluster_id), _pct(r.batch_share), _pct(r.reference_share),
                           f"{r.shift:+.1%}", r.flag, r.criteria_summary] for r in s.shifts],
                         "rrrrll")
    return out


_MD = {"tail_audit": _md_tail, "mix": _md_mix, "lineage": _md_lineage, "drift": _md_drift}


def render_markdown(report: Report) -> str:
    """Markdown for every anchoring section present; the loudest line comes first, in bold."""
    lines: list[str] = []
    for name in SECTIONS:
        section = getattr(report, name)
        if section is None:
            continue
        headlines = HEADLINES[name](section)
        lines += [f"**{md_text(text)}**" if colour in ("red", "yellow") else md_text(text)
                  for colour, text in headlines[:1]]
        lines += ["", f"# clusterdiv {report.command}: {TITLES[name]}", ""]
        lines.append(f"- input: {md_code(report.source)}" if report.source else "- input: (in memory)")
        lines += [f"- {md_text(text)}" for _, text in headlines[1:]]
        lines += [""] + _MD[name](section)
    t = report.timings
    lines += ["", f"_timings: total {t.total_s:.1f}s; LLM calls {t.llm_calls} (cache hits {t.llm_cache_hits}); "
                  f"embeddings computed {t.embedding_calls} (cache hits {t.embedding_cache_hits})"
                  + (f"; LLM {t.spend()}" if t.spent else "") + "_"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- rich


def _rich_table(title: str, header: list[str], rows: list[list[str]], styles: list[str | None] | None = None
                ) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for col in header:
        table.add_column(col)
    for k, row in enumerate(rows):
        table.add_row(*row, style=(styles[k] if styles else None))
    return table


def _rich_tail(s: TailAudit, console: Any) -> None:
    from rich.markup import escape

    flag_style = {"uncovered": "bold red", "undecided": "bold red", "under": "yellow", "ok": None}
    console.print(_rich_table(
        f"Tail entries ({s.policy} policy)",
        ["entry", "flag", "count", "share", "llm", "emb", "decided by", "seeds", "thr", "example ids"],
        [[e.name, e.flag, str(e.count), _pct(e.share),
          "-" if e.llm_count is None else str(e.llm_count),
          "-" if e.embedding_count is None else str(e.embedding_count), e.decided_by,
          str(e.n_seeds), _num(e.threshold, 2), _ids(e.example_ids, 3)] for e in s.entries],
        [flag_style[e.flag] for e in s.entries]))
    if s.judge_trusted is not None:
        console.print(f"[dim]judge {'trusted' if s.judge_trusted else 'NOT trusted'}: "
                      f"{escape(s.judge_trust_reason or '')}; controls: {escape(s.judge_controls or '')}[/dim]")
    console.print(f"[dim]calibration: {escape(s.calibration)}\nprefilter: {escape(s.prefilter)}\n"
                  f"LLM judgements {s.judgements} of {s.judgements_without_prefilter} possible; "
                  f"calls {s.llm_calls}, cache hits {s.llm_cache_hits}[/dim]")
    for note in s.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")


def _rich_mix(s: MixBudget, console: Any) -> None:
    from rich.markup import escape

    style = {"synthetic_only": "bold red", "synthetic_dominates": "yellow", "real_only": None, "ok": None}
    console.print(_rich_table(
        f"Groups ({s.group_by})",
        ["group", "flag", "n", "of mix", "real", "synth", "synth share", "synth tokens", "summary"],
        [[g.group, g.flag, str(g.n), _pct(g.share_of_mix), str(g.real), str(g.synthetic),
          _pct(g.synthetic_share), _pct(1 - g.real_token_share), g.summary[:60]]
         for g in s.groups], [style[g.flag] for g in s.groups]))
    values = ", ".join(f"{k} ({v})" for k, v in s.source_values.items())
    console.print(f"[dim]source values: {escape(values)}; real = {', '.join(s.real_values)}[/dim]")


def _rich_lineage(s: Lineage, console: Any) -> None:
    from rich.markup import escape

    console.print(_rich_table(
        "Per round", ["round", "n", "recursion-seeded", "share", "evidence"],
        [[r.round, str(r.n), str(r.recursion_seeded), _pct(r.share),
          ", ".join(f"{k} {v}" for k, v in sorted(r.by_evidence.items()))] for r in s.rounds]))
    if s.flagged:
        console.print(_rich_table(
            "Flagged examples (first 15)", ["id", "round", "evidence", "nearest synthetic", "nearest real"],
            [[f.id, f.round, "; ".join(f.reasons), _neighbour(f.nearest_synthetic),
              _neighbour(f.nearest_real)] for f in s.flagged[:15]]))
    console.print(f"[dim]threshold {s.threshold:.3f}: {escape(s.calibration)}[/dim]")


def _rich_drift(s: Drift, console: Any) -> None:
    from rich.markup import escape

    style = {"fresh": "green", "drifting": "yellow", "stale": "red", "n/a": "dim"}
    console.print(_rich_table(
        "Indicators", ["indicator", "value", "status", "fresh if", "stale if"],
        [[i.name, _num(i.value), i.status, i.fresh_if, i.stale_if] for i in s.indicators],
        [style[i.status] for i in s.indicators]))
    if s.shifts:
        console.print(_rich_table(
            "Largest per-mode share shifts", ["mode", "batch", "reference", "shift", "flag", "criteria"],
            [[str(r.cluster_id), _pct(r.batch_share), _pct(r.reference_share),
              f"{r.shift:+.1%}", r.flag, r.criteria_summary[:60]] for r in s.shifts]))
    if s.flag_test:
        console.print(f"[dim]mode flags: {escape(s.flag_test)}[/dim]")
    for note in s.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")


RICH = {"tail_audit": _rich_tail, "mix": _rich_mix, "lineage": _rich_lineage, "drift": _rich_drift}


def render_table(report: Report, console: Any) -> None:
    """Rich terminal view: the headline lines in colour, then the section's tables."""
    from rich.markup import escape

    for name in SECTIONS:
        s = getattr(report, name)
        if s is None:
            continue
        for colour, text in HEADLINES[name](s):
            style = f"bold {colour}" if colour in ("red", "yellow") else colour
            console.print(f"[{style}]{escape(text)}[/{style}]", soft_wrap=True)
        RICH[name](s, console)
    t = report.timings
    console.print(f"[dim]total {t.total_s:.1f}s | LLM calls {t.llm_calls} (cache hits {t.llm_cache_hits}) | "
                  f"embeddings computed {t.embedding_calls} (cache hits {t.embedding_cache_hits})[/dim]")
    print_spend(t, console)
