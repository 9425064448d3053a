"""Command-line interface: a thin typer layer over the library.

Exit codes: 0 success, 2 bad input (file, field, option), 1 anything else. Errors are one line
on stderr; `--debug` shows the traceback. Reports go to stdout (or --output), progress to stderr,
so `--format json` output can be piped.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from clusterdiv.cli.common import (
    BatchId,
    CacheDir,
    Debug,
    EmbeddingModel,
    Format,
    HistoryDb,
    InputFormatOpt,
    Output,
    OutputFormat,
    Owner,
    Progress,
    ReferenceSize,
    SkipInvalid,
    Tags,
    TextField,
    check_outputs,
    emit_report,
    handle_errors,
    history_file,
    stderr,
)
from clusterdiv.cli.options import ScoreOptions, shared_options
from clusterdiv.core.records import REFERENCE_SIZE

# Quiet third-party chatter before anything imports them; the report is the output.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure the diversity of text datasets by LLM semantic clustering.")
cache_app = typer.Typer(no_args_is_help=True, help="Inspect or clear the model-response cache.")
app.add_typer(cache_app, name="cache")


def _print_version(value: bool) -> None:
    if value:
        from clusterdiv import __version__

        typer.echo(f"clusterdiv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version, help="Print the version and exit")] = False) -> None:
    """Measure the diversity of text datasets by LLM semantic clustering."""

SEED_MAX = 2**32 - 1  # numpy's and most providers' seed range


@app.command()
@shared_options
def score(
    file: Annotated[Path, typer.Argument(help="JSONL, JSON, CSV, Parquet, TXT or a saved HF dataset dir")],
    *,
    output_format: Format = OutputFormat.table,
    output: Output = None,
    opts: ScoreOptions,  # --model ... --debug (cli_common.ScoreOptions)
    # --- per-example modes (issue 17): see clusterdiv/tasks/actions/assignments.py
    assignments: Annotated[Path | None, typer.Option(
        help="Also write each input row's mode here (.parquet, .jsonl or .csv)")] = None,
    all_modes: Annotated[bool, typer.Option(
        "--all-modes", help="With --reference: list every mode versus the reference, not only the most "
                            "discrepant (the JSON always holds all)")] = False,
    # --- history (issue 6): see clusterdiv/history/record.py
    record: Annotated[bool, typer.Option(help="Record the run in the history database")] = True,
    dataset: Annotated[str | None, typer.Option(help="History: dataset name (default: file stem)")] = None,
    batch_id: BatchId = None,
    owner: Owner = None,
    tag: Tags = None,
    history_db: HistoryDb = None,
    # --- engine (issue 16): see clusterdiv/engine/
    engine: Annotated[str, typer.Option(
        help="Where extraction and embedding run: local (this process) or ray (a Ray cluster)")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster to join (host:port, ray://host:10001 or auto); default: start one here")] = None,
) -> None:
    """Score the diversity of a dataset and print the report."""
    with handle_errors(opts.debug, output_format):
        from clusterdiv.reports.report import render_markdown, render_table
        from clusterdiv.tasks.score import score as run_score

        check_outputs({"--output": output, "--assignments": assignments},
                      [file, opts.reference, opts.prompt_file, history_file(history_db)])
        if record:  # a run that could not be recorded under a usable name costs no work
            from clusterdiv.history.record import recorded_dataset

            dataset = recorded_dataset(file, dataset)

        config = opts.config()
        from clusterdiv.engine import EngineSettings  # issue 16

        config = config.model_copy(update={"engine": EngineSettings.from_options(engine, ray_address)})
        load_options, ref_options = opts.load_options(), opts.reference_load_options()
        if assignments is not None:  # a bad extension fails before the run, not after
            from clusterdiv.tasks.actions.assignments import check_assignments_path

            check_assignments_path(assignments)
            if config.sample is None:  # a mode for every row: the full pass, not an auto sample
                config = config.model_copy(update={"sample": "all"})
        with opts.session() as (cache, bars):
            report = run_score(file, config=config, cache=cache, progress=bars, load_options=load_options,
                               reference=opts.reference, reference_load_options=ref_options)
            if assignments is not None:  # issue 17: same config and cache, so the report's modes
                from clusterdiv.tasks.actions.assignments import assign_modes, write_assignments

                write_assignments(assign_modes(file, config=config, cache=cache, load_options=load_options,
                                               reference=opts.reference, reference_load_options=ref_options),
                                  assignments)
                stderr.print(f"assignments written to {assignments}", highlight=False)
            warn_cache_damage(cache)
        if record:  # history (issue 6): a storage failure only warns, the report still prints
            from clusterdiv.history.record import record_from_cli

            record_from_cli(report, file=file, dataset=dataset, batch_id=batch_id, owner=owner, tags=tag,
                            db=history_db, console=stderr)
        emit_report(report, output_format, output,
                    markdown=lambda r: render_markdown(r, top=config.top_clusters, all_modes=all_modes),
                    table=lambda console: render_table(report, console, top=config.top_clusters,
                                                       all_modes=all_modes))


def warn_cache_damage(cache: Any) -> None:
    """One line when damaged cache entries were ignored (they were recomputed and rewritten)."""
    damaged = sum(cache.corrupt.values())
    if damaged:
        stderr.print(f"[yellow]warning:[/yellow] {damaged} damaged cache entries in {cache.directory} were "
                     "ignored and recomputed", highlight=False, soft_wrap=True)


def _metrics_in_memory(texts: list[str], plan: Any, selected: set[str], reference: Path | None,
                       embedding_model: str, text_field: str | None, skip_invalid: bool, seed: int,
                       self_bleu_sample: int | None, cache_dir: Path | None, reference_size: int,
                       progress: bool = True) -> dict[str, Any]:
    """`metrics` with semantic, reference or plugin metrics: these need every text (and embedding) at once."""
    from clusterdiv.io.corpus import load_corpus
    from clusterdiv.metrics.registry import compute_set_metrics

    vectors = ref_vectors = None
    if plan.needs_embeddings:
        from clusterdiv.cli.common import progress_bars
        from clusterdiv.core.cache import ModelCache
        from clusterdiv.core.progress import stage
        from clusterdiv.modes.embed import Embedder, embed_texts

        embedder = Embedder(embedding_model)
        with ModelCache(cache_dir) as cache, progress_bars(progress) as bars:
            def embed(name: str, items: list[str]) -> Any:
                with stage(bars, name, len(items)) as advance:
                    return embed_texts(items, model=embedder, cache=cache, progress=advance)

            vectors = embed("embed", texts)
            if reference is not None:
                ref = load_corpus(reference, text_field=text_field, skip_invalid=skip_invalid)
                ref_vectors = embed("ref", [e.text for e in ref.examples])
    return compute_set_metrics(texts, embeddings=vectors, reference_embeddings=ref_vectors,
                               select=selected, seed=seed, self_bleu_sample=self_bleu_sample,
                               reference_size=reference_size)


@app.command("metrics")
def metrics_command(
    file: Annotated[Path, typer.Argument(help="Dataset file or folder")],
    metrics: Annotated[str, typer.Option(help="all, lexical, semantic, reference, or metric names")] = "all",
    reference: Annotated[Path | None, typer.Option(help="Real data for MAUVE / precision / recall")] = None,
    embedding_model: EmbeddingModel = "all-MiniLM-L6-v2",
    text_field: TextField = None,
    skip_invalid: SkipInvalid = False,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="Seed for bootstrap and sampling")] = 0,
    self_bleu_sample: Annotated[int | None, typer.Option(min=2, help="Hypotheses sampled for self-BLEU")] = 2000,
    reference_size: ReferenceSize = REFERENCE_SIZE,
    output_format: Format = OutputFormat.table,
    cache_dir: CacheDir = None,
    input_format: InputFormatOpt = None,
    progress: Progress = True,
    debug: Debug = False,
) -> None:
    """Only the standard set metrics (no LLM); `--metrics lexical` needs no model at all."""
    with handle_errors(debug):
        import json

        from clusterdiv.core.errors import InputError
        from clusterdiv.io.corpus import load_corpus, stream_texts
        from clusterdiv.metrics.registry import METRIC_GROUPS, compute_lexical_metrics, select_metrics

        try:
            plan = select_metrics(metrics, has_reference=reference is not None)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        selected = set(plan.selected)
        fmt = input_format.value if input_format else None
        if selected <= set(METRIC_GROUPS["lexical"]):
            # Lexical metrics only: the texts are streamed in chunks and summarised, never all held.
            chunks = stream_texts(file, text_field=text_field, skip_invalid=skip_invalid, format=fmt)
            values = compute_lexical_metrics(chunks, select=selected, seed=seed, self_bleu_sample=self_bleu_sample)
            source, n_texts, skipped = chunks.path, chunks.n_texts, chunks.skipped
        else:
            corpus = load_corpus(file, text_field=text_field, skip_invalid=skip_invalid, format=fmt)
            texts = [e.text for e in corpus.examples]
            values = _metrics_in_memory(texts, plan, selected, reference, embedding_model, text_field, skip_invalid,
                                        seed, self_bleu_sample, cache_dir, reference_size, progress)
            source, n_texts, skipped = corpus.path, len(texts), corpus.skipped
        payload = {"source": source, "n_samples": n_texts, "skipped": len(skipped),
                   "skipped_rows": [s.model_dump() for s in skipped],
                   "metrics": {k: v.model_dump(mode="json") for k, v in values.items()}}
        if output_format is OutputFormat.json:
            sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
            return
        from rich.table import Table

        from clusterdiv.reports.report import metric_warnings, skipped_line

        notes = [skipped_line(len(skipped), [s.model_dump() for s in skipped])] if skipped else []
        notes += [f"warning: {w}" for w in metric_warnings({k: v.model_dump(mode="json") for k, v in values.items()})]
        table = Table(title=f"Set metrics: {source} ({n_texts} texts, {len(skipped)} skipped)")
        for col in ("metric", "value", "95% CI", "meaning"):
            table.add_column(col)
        for name, v in values.items():
            table.add_row(name, "n/a" if v.value is None else f"{v.value:.4f}",
                          f"{v.ci95[0]:.3f}-{v.ci95[1]:.3f}" if v.ci95 else "", v.meaning)
        if output_format is OutputFormat.markdown:
            lines = ["| metric | value | 95% CI | meaning |", "| --- | ---: | --- | --- |"]
            lines += [f"| {n} | {'n/a' if v.value is None else f'{v.value:.4f}'} | "
                      f"{f'{v.ci95[0]:.3f}-{v.ci95[1]:.3f}' if v.ci95 else ''} | {v.meaning} |"
                      for n, v in values.items()]
            lines += [""] + [f"- {n}" for n in notes] if notes else []
            sys.stdout.write("\n".join(lines) + "\n")
            return
        console = Console()
        console.print(table)
        for note in notes:
            console.print(note, highlight=False, soft_wrap=True)


@cache_app.command("info")
def cache_info(cache_dir: CacheDir = None, debug: Debug = False) -> None:
    """Show where the cache is, how many answers it holds, and its size."""
    import json

    from clusterdiv.core.cache import ModelCache

    with handle_errors(debug), ModelCache(cache_dir) as cache:
        sys.stdout.write(json.dumps(cache.info(), indent=2) + "\n")


@cache_app.command("clear")
def cache_clear(
    cache_dir: CacheDir = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    debug: Debug = False,
) -> None:
    """Delete every cached answer (the next run pays for all model calls again).

    A cache database that cannot be opened (corrupt, truncated) is deleted and recreated."""
    from clusterdiv.core.cache import CacheError, ModelCache, default_cache_dir

    directory = cache_dir or default_cache_dir()
    if not yes and not typer.confirm(f"Delete all cached answers in {directory}?"):
        raise typer.Exit(1)
    with handle_errors(debug):
        try:
            with ModelCache(cache_dir, migrate=False) as cache:
                removed = cache.clear()
        except CacheError as exc:
            if "is corrupt" not in str(exc):
                raise
            ModelCache.reset(directory)
            ModelCache(directory, migrate=False).close()
            sys.stdout.write(f"removed the corrupt cache database in {directory}; the cache is empty\n")
            return
    sys.stdout.write(f"removed {removed} entries\n")


@app.command()
def version() -> None:
    """Print the clusterdiv version."""
    from clusterdiv import __version__

    sys.stdout.write(f"clusterdiv {__version__}\n")


def _register_command_modules() -> None:
    import importlib
    import pkgutil

    import clusterdiv.cli.commands as commands

    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"clusterdiv.cli.commands.{module.name}").register(app)


_register_command_modules()


def _one_line_warnings() -> None:
    """clusterdiv's own warnings as one `warning:` line on stderr (no file:line, no source echo)."""
    import warnings

    original = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        if category.__module__.startswith("clusterdiv"):
            stderr.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main() -> None:
    _one_line_warnings()
    app()


if __name__ == "__main__":
    main()
