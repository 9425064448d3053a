"""Command-line interface: a thin typer layer over the library.

Exit codes: 0 success, 2 bad input (file, field, option), 1 anything else. Errors are one line
on stderr; `--debug` shows the traceback. Reports go to stdout (or --output), progress to stderr,
so `--format json` output can be piped.
"""

from __future__ import annotations

import os
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

# Quiet third-party chatter before anything imports them; the report is the output.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure the diversity of text datasets by LLM semantic clustering.")
cache_app = typer.Typer(no_args_is_help=True, help="Inspect or clear the model-response cache.")
app.add_typer(cache_app, name="cache")

stderr = Console(stderr=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


def _fail(exc: BaseException, debug: bool) -> NoReturn:
    from clusterdiv.errors import ClusterdivError

    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    code = exc.exit_code if isinstance(exc, ClusterdivError) else 1
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not isinstance(exc, ClusterdivError):
        message = f"{type(exc).__name__}: {message}"
    stderr.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class RichProgress:
    """Rich bars on stderr with done/total counts and cache hits per stage."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("cached {task.fields[cached]}"), TimeElapsedColumn(),
            console=stderr, transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._cached: dict[str, int] = {}

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, stage: str, total: int) -> None:
        self._cached[stage] = 0
        self._tasks[stage] = self._progress.add_task(stage, total=total, cached=0)

    def advance(self, stage: str, n: int = 1, *, cached: bool = False) -> None:
        if cached:
            self._cached[stage] += n
        self._progress.update(self._tasks[stage], advance=n, cached=self._cached[stage])

    def finish(self, stage: str) -> None:
        pass


@app.command()
def score(
    file: Annotated[Path, typer.Argument(help="JSONL, JSON, CSV, Parquet, TXT or a saved HF dataset dir")],
    model: Annotated[str, typer.Option(help="Any litellm model string; local/smollm2 runs offline")] = "local/smollm2",
    embedding_model: Annotated[str, typer.Option(help="sentence-transformers name or path")] = "all-MiniLM-L6-v2",
    sample: Annotated[int | None, typer.Option(help="Score a seeded random sample of N examples")] = None,
    seed: Annotated[int, typer.Option(help="Seed for sampling, UMAP, bootstrap and the LLM")] = 0,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="Report format")] = OutputFormat.table,
    output: Annotated[Path | None, typer.Option(help="Write the report here instead of stdout")] = None,
    text_field: Annotated[str | None, typer.Option(help="Field holding the text (auto-detected)")] = None,
    id_field: Annotated[str | None, typer.Option(help="Field holding a stable id")] = None,
    label_field: Annotated[str | None, typer.Option(help="Field holding a gold label")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Skip and count malformed rows instead of failing")] = False,
    prompt_file: Annotated[Path | None, typer.Option(help="Your own criteria prompt (YAML)")] = None,
    criteria: Annotated[str | None, typer.Option(help="Comma-separated criteria to embed")] = None,
    api_base: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL for the LLM")] = None,
    concurrency: Annotated[int, typer.Option(help="Concurrent LLM requests")] = 4,
    reference_size: Annotated[int, typer.Option(help="Sample size the normalised score refers to")] = 100,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache directory (or $CLUSTERDIV_CACHE_DIR)")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars on stderr")] = True,
    debug: Annotated[bool, typer.Option(help="Show tracebacks")] = False,
) -> None:
    """Score the diversity of a dataset and print the report."""
    try:
        from clusterdiv.cache import ModelCache
        from clusterdiv.llm.structured import LLMSettings
        from clusterdiv.pipeline import ScoreConfig
        from clusterdiv.pipeline import score as run_score
        from clusterdiv.report import render_markdown, render_table

        config = ScoreConfig(
            llm=LLMSettings(model=model, seed=seed, api_base=api_base, concurrency=concurrency),
            embedding_model=embedding_model,
            prompt_file=str(prompt_file) if prompt_file else None,
            criteria=[c.strip() for c in criteria.split(",") if c.strip()] if criteria else None,
            seed=seed,
            sample=sample,
            reference_size=reference_size,
        )
        load_options = {"text_field": text_field, "id_field": id_field, "label_field": label_field,
                        "skip_invalid": skip_invalid}
        with ModelCache(cache_dir) as cache:
            if progress and stderr.is_terminal or progress and os.environ.get("CLUSTERDIV_FORCE_PROGRESS"):
                with RichProgress() as bars:
                    report = run_score(file, config=config, cache=cache, progress=bars, load_options=load_options)
            else:
                report = run_score(file, config=config, cache=cache, load_options=load_options)
        if output_format is OutputFormat.json:
            text = report.to_json()
        elif output_format is OutputFormat.markdown:
            text = render_markdown(report)
        else:
            if output is None:
                render_table(report, Console(), top=config.top_clusters)
                return
            from io import StringIO

            buffer = StringIO()
            render_table(report, Console(file=buffer, width=140), top=config.top_clusters)
            text = buffer.getvalue()
        if output is not None:
            output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
            stderr.print(f"report written to {output}")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/yellow]: every answer received so far is cached; rerun to resume")
        raise typer.Exit(130) from None
    except Exception as exc:  # one line per error; traceback only with --debug
        _fail(exc, debug)


@cache_app.command("info")
def cache_info(cache_dir: Annotated[Path | None, typer.Option(help="Cache directory")] = None) -> None:
    """Show where the cache is, how many answers it holds, and its size."""
    import json

    from clusterdiv.cache import ModelCache

    with ModelCache(cache_dir) as cache:
        sys.stdout.write(json.dumps(cache.info(), indent=2) + "\n")


@cache_app.command("clear")
def cache_clear(
    cache_dir: Annotated[Path | None, typer.Option(help="Cache directory")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete every cached answer (the next run pays for all model calls again)."""
    from clusterdiv.cache import ModelCache

    with ModelCache(cache_dir) as cache:
        if not yes and not typer.confirm(f"Delete all cached answers in {cache.directory}?"):
            raise typer.Exit(1)
        removed = cache.clear()
    sys.stdout.write(f"removed {removed} entries\n")


@app.command()
def version() -> None:
    """Print the clusterdiv version."""
    from clusterdiv import __version__

    sys.stdout.write(f"clusterdiv {__version__}\n")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
