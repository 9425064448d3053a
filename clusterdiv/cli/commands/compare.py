"""`clusterdiv compare`: several batches side by side at one sample size, in one shared clustering."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clusterdiv.cli.common import Format, OutputFormat, Reference, check_outputs, handle_errors
from clusterdiv.cli.options import ScoreOptions, shared_options, vary


def batch_names(files: list[Path], names: str | None) -> list[str]:
    """--names when given (one per file), else file stems; names must be unique."""
    from clusterdiv.core.errors import InputError
    from clusterdiv.history.record import default_dataset_name

    chosen = [n.strip() for n in names.split(",")] if names else [default_dataset_name(f) for f in files]
    if len(chosen) != len(files):
        raise InputError(f"--names has {len(chosen)} names for {len(files)} files")
    if any(not n for n in chosen) or len(set(chosen)) != len(chosen):
        raise InputError(f"batch names must be unique and non-empty, got {chosen}; pass --names a,b,c")
    return chosen


@shared_options
def compare_command(
    files: Annotated[list[Path], typer.Argument(help="Two or more batches (any format `score` reads)")],
    *,
    names: Annotated[str | None, typer.Option(help="Comma-separated display names (default: file stems)")] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="Common sample size (default: the smallest batch's)")] = None,
    reference: Reference = None,
    chart: Annotated[Path | None, typer.Option(help="Write a PNG chart here")] = None,
    permutations: Annotated[int, typer.Option(help="Permutations per pairwise test", min=99)] = 1000,
    output_format: Format = OutputFormat.table,
    output: Annotated[Path | None, typer.Option(help="Write the comparison here instead of stdout")] = None,
    opts: Annotated[ScoreOptions, vary("sample", "sample_width", "api_key", "reference", "input_format", "reference_label_field")],
) -> None:
    """Compare batches (e.g. generators): scores with intervals, significance, over/under-represented modes."""
    with handle_errors(opts.debug, output_format):
        from io import StringIO

        from rich.console import Console

        from clusterdiv.cli.common import write_text
        from clusterdiv.core.errors import InputError
        from clusterdiv.tasks.compare import compare
        from clusterdiv.tasks.compare_render import (
            plot_comparison,
            render_comparison_markdown,
            render_comparison_table,
        )

        if len(files) < 2:
            raise InputError("compare needs at least two files")
        check_outputs({"--output": output, "--chart": chart}, [*files, reference, opts.prompt_file])
        labels = batch_names(files, names)
        config = opts.config()  # --sample is compare's own: the common size, drawn by compare()
        with opts.session() as (cache, bars):
            report = compare(
                dict(zip(labels, files, strict=True)), config=config, cache=cache, reference=reference,
                sample=sample, progress=bars, permutations=permutations,
                load_options=opts.load_options(), reference_load_options=opts.reference_load_options(),
            )
        if chart is not None:
            plot_comparison(report, chart)
            Console(stderr=True).print(f"chart written to {chart}")
        if output_format is OutputFormat.json:
            write_text(report.to_json(), output)
        elif output_format is OutputFormat.markdown:
            write_text(render_comparison_markdown(report), output)
        elif output is None:
            render_comparison_table(report, Console())
        else:
            buffer = StringIO()
            render_comparison_table(report, Console(file=buffer, width=160))
            write_text(buffer.getvalue(), output)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
