"""CLI to act on the measurement (issue 17): `select` (a diverse subset under a budget) and `seeds`
(real seed examples of the modes a batch lacks). Library: clusterdiv.tasks.actions.

Same contract as `score`: errors as one line on stderr, exit 2 for bad input and 1 otherwise,
--debug for the traceback. `score --assignments FILE` (per-example modes) lives in cli.py's `score`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from clusterdiv.cli.common import (
    Alpha,
    EmbeddingModel,
    Format,
    InputFormatOpt,
    LabelField,
    LLMTimeout,
    Model,
    OutputFormat,
    ReferenceLabelField,
    RepresentationOpt,
    Seed,
    Threshold,
    build_config,
    check_outputs,
    handle_errors,
)
from clusterdiv.cli.options import InputOptions, SpendOptions, shared_options, vary
from clusterdiv.core.records import REFERENCE_SIZE
from clusterdiv.modes.shares import DEFAULT_ALPHA
from clusterdiv.tasks.actions.render import pct, seeds_summary, select_markdown

SourceField = Annotated[str, typer.Option(help="Field saying where an example came from (real or synthetic)")]
RealValues = Annotated[str, typer.Option(help="Comma-separated source values that mean real (case-insensitive)")]


@dataclasses.dataclass(frozen=True)
class ActionOptions(SpendOptions, InputOptions):
    """What `select` and `seeds` share: how real rows are told apart, how the modes are built, the input."""

    source_field: SourceField = "source"
    real_values: RealValues = "real,human,gold,original"
    seed: Seed = 0
    representation: RepresentationOpt = None
    threshold: Threshold = None
    model: Model = "local/smollm2"
    timeout: LLMTimeout = None
    embedding_model: EmbeddingModel = "all-MiniLM-L6-v2"
    output_format: Format = OutputFormat.table
    input_format: InputFormatOpt = None
    alpha: Alpha = DEFAULT_ALPHA
    label_field: LabelField = None

    def real(self) -> list[str]:
        return [v.strip() for v in self.real_values.split(",") if v.strip()]

    def config(self) -> Any:
        """score's config with these options and score's defaults for the rest; no set metrics needed."""
        return build_config(model=self.model, embedding_model=self.embedding_model, seed=self.seed, sample=None,
                            prompt_file=None, criteria=None, api_base=None, concurrency=4, reference_size=REFERENCE_SIZE,
                            metrics="none", representation=self.representation, threshold=self.threshold,
                            timeout=self.timeout, alpha=self.alpha, spend=self.spend())

    def load_options(self) -> dict[str, Any]:
        return super().load_options(format=self.input_format.value if self.input_format else None,
                                    label_field=self.label_field)


def register(app: typer.Typer) -> None:
    @app.command("select")
    @shared_options
    def select_command(
        batch: Annotated[Path, typer.Argument(help="The batch to choose from (any format `score` reads)")],
        *,
        budget: Annotated[int, typer.Option(min=1, help="How many examples to keep (never exceeded)")],
        reference: Annotated[Path | None, typer.Option(help="Real data: follow its mode shares")] = None,
        real_share: Annotated[float | None, typer.Option(
            min=0.0, max=1.0, help="Mix budget: prefer real examples (by --source-field) up to this share of "
                                   "the budget, never more")] = None,
        max_share: Annotated[float | None, typer.Option(
            min=0.0, max=1.0, help="Cap on any one mode's share of the budget")] = None,
        out: Annotated[Path | None, typer.Option(help="Write the subset here (default: BATCH.selected.<ext>), "
                                                      "in the input's format unless the name says another")] = None,
        opts: ActionOptions,
    ) -> None:
        """A subset of N examples that covers the modes, follows the reference and keeps the mix budget."""

        with handle_errors(opts.debug, opts.output_format):
            from clusterdiv.cli.common import stderr
            from clusterdiv.tasks.actions.select import select_subset
            from clusterdiv.tasks.actions.write import default_output, write_examples
            from clusterdiv.tasks.actions.write import output_format as out_format

            target = out or default_output(batch, "selected")
            check_outputs({"--out": target}, [batch, reference])
            out_format(target, None)  # a name it cannot write (.parquet.gz) fails before the run
            with opts.session() as (cache, bars):
                result = select_subset(
                    batch, budget=budget, reference=reference, real_share=real_share, max_share=max_share,
                    source_field=opts.source_field, real_values=opts.real(), config=opts.config(), cache=cache,
                    progress=bars, load_options=opts.load_options(),
                    reference_load_options={"text_field": opts.text_field, "skip_invalid": opts.skip_invalid})
            write_examples(result.examples, target, fmt=out_format(target, result.input_format),
                           text_field=result.text_field, id_field=opts.id_field, label_field=opts.label_field)
            stderr.print(f"{result.n_selected} examples written to {target}", highlight=False)
            if opts.output_format is OutputFormat.json:
                sys.stdout.write(json.dumps({**result.model_dump(mode="json"), "out": str(target)}, indent=2) + "\n")
            elif opts.output_format is OutputFormat.markdown:
                sys.stdout.write(select_markdown(result))
            else:
                from rich.console import Console
                from rich.table import Table

                table = Table(title=f"select: {result.n_selected} of {result.n_input} (budget {result.budget})")
                for col in ("", "examples", "real", "modes touched", "normalised score",
                            "real data in missing modes", "share distance"):
                    table.add_column(col, justify="right" if col else "left")
                for name, f in (("before", result.before), ("after", result.after)):
                    table.add_row(name, str(f.n), "" if f.real is None else str(f.real), str(f.n_modes),
                                  f"{f.score_normalized:.3f}", pct(f.reference_share_missing),
                                  "" if f.share_distance is None else f"{f.share_distance:.3f}")
                Console().print(table)
                if result.coverage:
                    Console().print(result.coverage, highlight=False, soft_wrap=True)


    @app.command("seeds")
    @shared_options
    def seeds_command(
        batch: Annotated[Path, typer.Argument(help="The synthetic batch")],
        *,
        reference: Annotated[Path, typer.Option(help="Real data: seeds are drawn from it only")],
        per_mode: Annotated[int, typer.Option(min=1, help="Real seed examples per lacking mode")] = 5,
        against: Annotated[list[Path] | None, typer.Option(
            help="Earlier synthetic batches: reference rows copied or paraphrased from them are never seeds")] = None,
        missing_only: Annotated[bool, typer.Option(help="Only modes the batch has no example of")] = False,
        out: Annotated[Path | None, typer.Option(help="Write the seeds JSONL here (default: stdout)")] = None,
        reference_label_field: ReferenceLabelField = None,
        opts: Annotated[ActionOptions, vary("output_format", "input_format")],
    ) -> None:
        """Real seeds (JSONL, one line per mode) for every mode the batch lacks or under-covers."""

        with handle_errors(opts.debug):
            from clusterdiv.cli.common import stderr
            from clusterdiv.tasks.actions.seeds import tail_seeds, write_seeds

            check_outputs({"--out": out}, [batch, reference, *(against or [])])
            with opts.session() as (cache, bars):  # the reference's ids matter too: they are what seeds are
                result = tail_seeds(
                    batch, reference=reference, per_mode=per_mode, against=list(against or []),
                    source_field=opts.source_field, real_values=opts.real(), include_under=not missing_only,
                    config=opts.config(), cache=cache, progress=bars,
                    load_options={**opts.load_options(), "label_field": None},  # labels: the reference's
                    reference_load_options=opts.load_options(), reference_label_field=reference_label_field)
            text = write_seeds(result, out)
            stderr.print(seeds_summary(result), highlight=False, soft_wrap=True)
            if result.by_label is not None:  # issue 31 item 3: the lines written are the lacking labels'
                stderr.print(f"{result.by_label.line()}; {sum(len(m.seeds) for m in result.label_seeds)} seeds "
                             f"for {len(result.label_seeds)} labels", highlight=False, soft_wrap=True)
            if out is None:
                sys.stdout.write(text)
            else:
                stderr.print(f"seeds written to {out}", highlight=False)

