"""CLI for reality anchoring: `audit-tail`, `mix`, `lineage`, `drift` (library: clusterdiv.tasks.anchoring).

Same contract as `score`: the report on stdout (or --output) as a table, JSON or markdown; errors
as one line on stderr with exit 2 for bad input and 1 otherwise; --debug for the traceback.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from clusterdiv.cli.common import (
    Alpha,
    ApiBase,
    Concurrency,
    EmbeddingModel,
    Format,
    LLMTimeout,
    Model,
    Output,
    OutputFormat,
    Seed,
    check_outputs,
    emit_report,
    handle_errors,
    stderr,
)
from clusterdiv.cli.options import InputOptions, SpendOptions, shared_options, vary
from clusterdiv.modes.shares import DEFAULT_ALPHA


class Judge(str, Enum):
    both = "both"
    either = "either"
    llm = "llm"
    embedding = "embedding"


class ClusterOn(str, Enum):
    criteria = "criteria"
    text = "text"
    none = "none"


class MixClusterOn(str, Enum):  # a mix without labels is always grouped by something
    text = "text"
    criteria = "criteria"


@dataclasses.dataclass(frozen=True)
class AnchoringOptions(SpendOptions, InputOptions):
    """The options every anchoring command shares (`lineage` calls no LLM: it takes them without those)."""

    model: Model = "local/smollm2"
    api_base: ApiBase = None
    concurrency: Concurrency = 4
    timeout: LLMTimeout = None
    embedding_model: EmbeddingModel = "all-MiniLM-L6-v2"
    seed: Seed = 0
    output_format: Format = OutputFormat.table
    output: Output = None
    gate: Annotated[bool, typer.Option(
        "--gate/--no-gate", help="Exit 3 (as `check` on a breach) when the verdict is bad: an uncovered tail "
                                 "entry, synthetic dominating a group or a mix off target, a recursion-seeded "
                                 "example, a stale batch")] = False

    def llm(self) -> Any:
        from clusterdiv.llm.structured import LLMSettings

        return LLMSettings(model=self.model, seed=self.seed, api_base=self.api_base, concurrency=self.concurrency,
                           **({"timeout": self.timeout} if self.timeout is not None else {}), **self.spend())

    def reference_load_options(self, **extra: Any) -> dict[str, Any]:
        """The batch's ids are not the reference's: `--id-field` applies to the batch only."""
        return self.load_options(id_field=None, **extra)


    def check_output(self, *inputs: Path | None) -> None:
        """`--output` is writable and none of the files the command reads (before any work)."""
        check_outputs({"--output": self.output}, inputs)

    def emit(self, report: Any) -> None:
        """The report, then with `--gate` exit 3 and one line per bad verdict (the report is written first)."""
        from clusterdiv.history.gate import EXIT_BREACH
        from clusterdiv.tasks.anchoring.gate import breaches
        from clusterdiv.tasks.anchoring.render import render_markdown, render_table

        emit_report(report, self.output_format, self.output, markdown=render_markdown,
                    table=lambda console: render_table(report, console))
        failed = breaches(report) if self.gate else []
        if failed:
            for line in failed:
                stderr.print(f"[red]gate:[/red] {line}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BREACH)


def register(app: typer.Typer) -> None:
    @app.command("audit-tail")
    @shared_options
    def audit_tail_command(
        batch: Annotated[Path, typer.Argument(help="The synthetic batch to audit")],
        *,
        tail: Annotated[Path | None, typer.Option(help="Tail spec (YAML/JSON): entries with name, "
                                                       "description, optional seeds")] = None,
        reference: Annotated[Path | None, typer.Option(help="Labelled real data: derive the tail from its "
                                                            "rarest labels (needs --label-field)")] = None,
        label_field: Annotated[str | None, typer.Option(help="Label field of --reference")] = None,
        tail_size: Annotated[int, typer.Option(help="How many rarest labels form the derived tail")] = 5,
        max_seeds: Annotated[int, typer.Option(help="Real examples used as seeds per derived entry")] = 20,
        judge: Annotated[Judge, typer.Option(help="Which signal decides: both (LLM and embedding agree), "
                                                  "either, llm, or embedding (no LLM calls)")] = Judge.both,
        judge_top: Annotated[int, typer.Option(help="LLM-judge only the M examples nearest each entry "
                                                    "(0 = judge all: |batch| x |entries| calls)")] = 50,
        threshold: Annotated[float | None, typer.Option(help="Cosine threshold of the embedding signal "
                                                             "(default 0.65; 0.5 with a derived tail)")] = None,
        min_count: Annotated[int, typer.Option(help="Flag entries covered by fewer examples")] = 1,
        min_share: Annotated[float, typer.Option(help="Flag entries covering a smaller share of the batch")] = 0.0,
        opts: AnchoringOptions,
    ) -> None:
        """Count the batch examples covering each tail entry; the uncovered ones come first, in red."""

        with handle_errors(opts.debug, opts.output_format):
            from clusterdiv.core.errors import InputError
            from clusterdiv.tasks.anchoring.tail import audit_tail

            opts.check_output(batch, tail, reference)
            if tail is not None and reference is not None:
                raise InputError("give --tail or --reference (to derive the tail), not both")
            if tail is None and reference is None:
                raise InputError("give a tail spec with --tail, or --reference with --label-field to derive one")
            if reference is not None and label_field is None:
                raise InputError("--reference needs --label-field to find the rarest labels")
            with opts.session() as (cache, bars):
                report = audit_tail(
                    batch, spec=tail, reference=reference, tail_size=tail_size, max_seeds=max_seeds,
                    judge=judge.value, model=opts.llm(),
                    embedding_model=opts.embedding_model, threshold=threshold,
                    judge_top=judge_top or None, min_count=min_count, min_share=min_share, seed=opts.seed,
                    cache=cache, progress=bars, load_options=opts.load_options(),
                    reference_load_options=opts.reference_load_options(label_field=label_field),
                )
            opts.emit(report)


    @app.command("mix")
    @shared_options
    def mix_command(
        dataset: Annotated[Path, typer.Argument(help="The training mix (real and synthetic examples)")],
        *,
        source_field: Annotated[str, typer.Option(help="Field saying where an example came from")] = "source",
        real_values: Annotated[str, typer.Option(help="Comma-separated source values that mean real "
                                                      "(case-insensitive); anything else is synthetic")]
        = "real,human,gold,original",
        target_real_share: Annotated[float | None, typer.Option(help="Target share of real examples")] = 0.5,
        tolerance: Annotated[float, typer.Option(help="How far from the target still counts as on target")] = 0.05,
        label_field: Annotated[str | None, typer.Option(help="Group by this label (else by the mix's modes)")]
        = None,
        cluster_on: Annotated[MixClusterOn, typer.Option(help="Without --label-field: modes of the raw text "
                                                              "embeddings (no LLM), or of LLM criteria (one call "
                                                              "per distinct text)")] = MixClusterOn.text,
        dominance: Annotated[float, typer.Option(help="Warn when a group's synthetic share exceeds this")] = 0.8,
        opts: AnchoringOptions,
    ) -> None:
        """Real versus synthetic counts and token shares, overall and per label or cluster, vs a target."""

        with handle_errors(opts.debug, opts.output_format):
            from clusterdiv.tasks.anchoring.mix import mix_budget

            opts.check_output(dataset)
            with opts.session() as (cache, bars):
                report = mix_budget(
                    dataset, source_field=source_field,
                    real_values=[v for v in (x.strip() for x in real_values.split(",")) if v],
                    target_real_share=target_real_share, tolerance=tolerance, label_field=label_field,
                    cluster_on=cluster_on.value, dominance_threshold=dominance, model=opts.llm(),
                    embedding_model=opts.embedding_model, seed=opts.seed, cache=cache, progress=bars,
                    load_options=opts.load_options(),
                )
            opts.emit(report)


    @app.command("lineage")
    @shared_options
    def lineage_command(
        batch: Annotated[Path, typer.Argument(help="The new synthetic batch")],
        more: Annotated[list[Path] | None, typer.Argument(help="More earlier synthetic batches, as in "
                                                                "`--against A B C`", show_default=False)] = None,
        *,
        against: Annotated[list[Path] | None, typer.Option(help="Earlier synthetic batch(es): `--against A B` "
                                                                "or `--against A --against B`")] = None,
        real: Annotated[Path | None, typer.Option(help="Real data the batch should be seeded from")] = None,
        threshold: Annotated[float | None, typer.Option(help="Cosine threshold for paraphrases (default: "
                                                             "calibrated on --real, else 0.9)")] = None,
        real_percentile: Annotated[float | None, typer.Option(help="Percentile of the real data's own evidence each "
                                                            "paraphrase test must exceed (about 100 minus it "
                                                            "is the share of fresh real data falsely flagged; "
                                                            "default 97)")] = None,
        near_dup_jaccard: Annotated[float, typer.Option(help="Shingle Jaccard of a near duplicate")] = 0.8,
        opts: Annotated[AnchoringOptions, vary("model", "api_base", "concurrency", "timeout", "seed",
                                                         "dry_run", "max_calls", "max_cost", "partial")],
    ) -> None:
        """Flag batch examples copied or paraphrased from earlier synthetic batches rather than real data."""

        with handle_errors(opts.debug, opts.output_format):
            from clusterdiv.core.errors import InputError
            from clusterdiv.tasks.anchoring.lineage import DEFAULT_REAL_PERCENTILE, check_lineage

            opts.check_output(batch, *(against or []), *(more or []), real)
            if not against:
                raise InputError("give the earlier synthetic batches with --against")
            with opts.session() as (cache, bars):
                report = check_lineage(
                    batch, against=[*against, *(more or [])], real=real, embedding_model=opts.embedding_model,
                    threshold=threshold, near_dup_jaccard=near_dup_jaccard,
                    real_percentile=DEFAULT_REAL_PERCENTILE if real_percentile is None else real_percentile,
                    cache=cache, progress=bars, load_options=opts.load_options(),
                )
            opts.emit(report)


    @app.command("drift")
    @shared_options
    def drift_command(
        batch: Annotated[Path, typer.Argument(help="The synthetic batch")],
        *,
        reference: Annotated[Path, typer.Option(help="A fresh sample of real data")],
        expires_after: Annotated[str | None, typer.Option(help="Date (YYYY-MM-DD) after which the batch is "
                                                               "stale regardless of the metrics")] = None,
        as_of: Annotated[str | None, typer.Option(help="Check the expiry against this date (default today)")]
        = None,
        cluster_on: Annotated[ClusterOn, typer.Option(help="Per-mode shares from raw text embeddings (no LLM; "
                                                           "the validated default), LLM criteria, or none")]
        = ClusterOn.text,
        alpha: Alpha = DEFAULT_ALPHA,
        opts: AnchoringOptions,
    ) -> None:
        """Shelf life: MAUVE, recall, coverage and per-mode share shifts vs fresh real data; a verdict."""

        with handle_errors(opts.debug, opts.output_format):
            from clusterdiv.tasks.anchoring.drift import drift

            opts.check_output(batch, reference)
            with opts.session() as (cache, bars):
                report = drift(
                    batch, reference, expires_after=expires_after, as_of=as_of,
                    cluster_on=None if cluster_on is ClusterOn.none else cluster_on.value,
                    model=opts.llm(), embedding_model=opts.embedding_model, seed=opts.seed, alpha=alpha,
                    cache=cache, progress=bars, load_options=opts.load_options(),
                    reference_load_options=opts.reference_load_options(),
                )
            opts.emit(report)

