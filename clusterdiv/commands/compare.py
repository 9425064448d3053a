"""`clusterdiv compare`: several batches side by side at one sample size, in one shared clustering."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clusterdiv.cli_common import (
    ApiBase,
    CacheDir,
    Concurrency,
    Criteria,
    Debug,
    EmbeddingModel,
    Format,
    IdField,
    Metrics,
    Model,
    OutputFormat,
    Progress,
    PromptFile,
    Reference,
    ReferenceSize,
    RepresentationOpt,
    Seed,
    SkipInvalid,
    TextField,
    TextWeight,
    Threshold,
    handle_errors,
)


def batch_names(files: list[Path], names: str | None) -> list[str]:
    """--names when given (one per file), else file stems; names must be unique."""
    from clusterdiv.errors import InputError
    from clusterdiv.history.record import default_dataset_name

    chosen = [n.strip() for n in names.split(",")] if names else [default_dataset_name(f) for f in files]
    if len(chosen) != len(files):
        raise InputError(f"--names has {len(chosen)} names for {len(files)} files")
    if any(not n for n in chosen) or len(set(chosen)) != len(chosen):
        raise InputError(f"batch names must be unique and non-empty, got {chosen}; pass --names a,b,c")
    return chosen


def compare_command(
    files: Annotated[list[Path], typer.Argument(help="Two or more batches (any format `score` reads)")],
    names: Annotated[str | None, typer.Option(help="Comma-separated display names (default: file stems)")] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="Common sample size (default: the smallest batch's)")] = None,
    reference: Reference = None,
    chart: Annotated[Path | None, typer.Option(help="Write a PNG chart here")] = None,
    permutations: Annotated[int, typer.Option(help="Permutations per pairwise test", min=99)] = 1000,
    output_format: Format = OutputFormat.table,
    output: Annotated[Path | None, typer.Option(help="Write the comparison here instead of stdout")] = None,
    model: Model = "local/smollm2",
    embedding_model: EmbeddingModel = "all-MiniLM-L6-v2",
    seed: Seed = 0,
    text_field: TextField = None,
    id_field: IdField = None,
    skip_invalid: SkipInvalid = False,
    prompt_file: PromptFile = None,
    criteria: Criteria = None,
    representation: RepresentationOpt = None,
    text_weight: TextWeight = None,
    threshold: Threshold = None,
    api_base: ApiBase = None,
    concurrency: Concurrency = 4,
    reference_size: ReferenceSize = 100,
    metrics: Metrics = "all",
    cache_dir: CacheDir = None,
    progress: Progress = True,
    debug: Debug = False,
) -> None:
    """Compare batches (e.g. generators): scores with intervals, significance, over/under-represented modes."""
    with handle_errors(debug):
        from io import StringIO

        from rich.console import Console

        from clusterdiv.cache import ModelCache
        from clusterdiv.cli_common import build_config, progress_bars, write_text
        from clusterdiv.compare import compare
        from clusterdiv.compare_render import (
            plot_comparison,
            render_comparison_markdown,
            render_comparison_table,
        )
        from clusterdiv.errors import InputError

        if len(files) < 2:
            raise InputError("compare needs at least two files")
        labels = batch_names(files, names)
        config = build_config(model=model, embedding_model=embedding_model, seed=seed, sample=None,
                              prompt_file=prompt_file, criteria=criteria, api_base=api_base,
                              concurrency=concurrency, reference_size=reference_size, metrics=metrics,
                              representation=representation, text_weight=text_weight, threshold=threshold)
        with ModelCache(cache_dir) as cache, progress_bars(progress) as bars:
            report = compare(
                dict(zip(labels, files, strict=True)), config=config, cache=cache, reference=reference,
                sample=sample, progress=bars, permutations=permutations,
                load_options={"text_field": text_field, "id_field": id_field, "skip_invalid": skip_invalid},
                reference_load_options={"text_field": text_field, "skip_invalid": skip_invalid},
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
