"""What every CLI command shares: the option aliases, the output formats, the error wrapper, progress, output.

The option aliases are declared once here; `options.py` bundles the ones that travel together into
option groups. `handle_errors` is the one error contract: one line on stderr,
`ClusterdivError.exit_code` as the exit status (1 for anything else, 130 on Ctrl-C), the traceback
only with `--debug`. This module never imports `cli/root.py` (no import cycle).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from clusterdiv.core.records import MAX_REFERENCE_SIZE

stderr = Console(stderr=True)

OPTION_FLAGS: dict[str, str] = {"drop_window": "--window"}
"""Library parameter -> CLI flag, for parameters whose flag is not `--` + the name in kebab case."""


def flag_for(option: str) -> str:
    """The CLI flag of a library parameter named in an error (`text_field` -> `--text-field`)."""
    return OPTION_FLAGS.get(option, "--" + option.replace("_", "-"))


def fail(exc: BaseException, debug: bool) -> NoReturn:
    """Print one line (traceback only with --debug) and exit with the error's code.

    A `ClusterdivError` whose `option` names the library parameter at fault gets the CLI flag
    appended (the library's message never names a flag).
    """
    from clusterdiv.core.errors import ClusterdivError

    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    code = exc.exit_code if isinstance(exc, ClusterdivError) else 1
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not isinstance(exc, ClusterdivError):
        message = f"{type(exc).__name__}: {message}"
    elif getattr(exc, "option", None) and flag_for(exc.option) not in message:
        message = f"{message} ({flag_for(exc.option)})"
    from rich.markup import escape  # a message holding [brackets] (an extra, a list) is text, not markup

    stderr.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_plan(plan: Any, output_format: OutputFormat | None) -> None:
    """A dry run's plan on stdout: JSON, or a table (markdown and table alike)."""
    if output_format is OutputFormat.json:
        sys.stdout.write(plan.to_json() + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="LLM plan (dry run: no model was called)", title_justify="left")
    for column in ("step", "model", "calls", "cached", "prompt tokens", "completion ≤", "cost ≤"):
        table.add_column(column, justify="left" if column in ("step", "model") else "right", no_wrap=True)

    def cost(value: float | None, calls: int) -> str:
        return "$0" if not calls else "unknown price" if value is None else f"${value:.4f}"

    for step in plan.steps:
        table.add_row(step.stage, step.model, str(step.calls), str(step.cached), f"{step.prompt_tokens:,}",
                      f"{step.completion_tokens_max:,}", cost(step.cost_usd_max, step.calls))
    totals = plan.totals()
    if len(plan.steps) != 1:
        table.add_row("total", "", str(totals["calls"]), str(totals["cached"]), f"{totals['prompt_tokens']:,}",
                      f"{totals['completion_tokens_max']:,}", cost(totals["cost_usd_max"], totals["calls"]))
    console = Console()
    if not console.is_terminal:  # a pipe or a file has no width to measure: never cut a figure
        console = Console(width=120)
    console.print(table)
    if not plan.steps:
        console.print("no LLM step: a real run makes no LLM call", highlight=False)
    if plan.note:
        console.print(plan.note, highlight=False)


@contextlib.contextmanager
def handle_errors(debug: bool, output_format: OutputFormat | None = None) -> Iterator[None]:
    """The CLI's error contract around a command body (see the module docstring); a dry run's plan
    (`PlanReady`, raised before any LLM call) is printed in `output_format` and exits 0."""
    from clusterdiv.llm.structured import PlanReady  # litellm is imported only on a call

    try:
        yield
    except typer.Exit:
        raise
    except PlanReady as ready:
        print_plan(ready.plan, output_format)
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/yellow]: every answer received so far is cached; rerun to resume")
        raise typer.Exit(130) from None
    except Exception as exc:  # one line per error; traceback only with --debug
        fail(exc, debug)


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

    def announce(self, message: str) -> None:
        """Above the bars: what the next step is about to cost (`llm.structured.announce_calls`)."""
        self._progress.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def start(self, stage: str, total: int) -> None:
        self._cached[stage] = 0
        self._tasks[stage] = self._progress.add_task(stage, total=total, cached=0)

    def advance(self, stage: str, n: int = 1, *, cached: bool = False) -> None:
        if cached:
            self._cached[stage] += n
        self._progress.update(self._tasks[stage], advance=n, cached=self._cached[stage])

    def finish(self, stage: str) -> None:
        pass


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


Format = Annotated[OutputFormat, typer.Option("--format", help="Output format")]
Output = Annotated[Path | None, typer.Option(help="Write the report here instead of stdout")]
Model = Annotated[str, typer.Option(help="Any litellm model string; local/smollm2 runs offline")]
EmbeddingModel = Annotated[str, typer.Option(help="sentence-transformers name or path")]
Seed = Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed for sampling, UMAP, bootstrap and the LLM")]
TextField = Annotated[str | None, typer.Option(help="Field holding the text (auto-detected)")]
IdField = Annotated[str | None, typer.Option(help="Field holding a stable id")]
LabelField = Annotated[str | None, typer.Option(help="Field holding a gold label")]
ReferenceLabelField = Annotated[str | None, typer.Option(
    help="Field of --reference holding its labels: coverage by label (a classifier fitted on the reference says "
         "which real labels the batch lacks, tested as the modes are)")]
def _sample_option(value: str) -> int | str:
    """`--sample N|auto|all`, refused at parse time (exit 2, one line) in the words of the other bounds."""
    text = str(value).strip().lower()
    if text in ("auto", "all"):
        return text
    try:
        number = int(text)
    except ValueError:
        raise typer.BadParameter("Input should be a positive number, auto or all") from None
    if number < 1:
        raise typer.BadParameter("Input should be greater than or equal to 1")
    return number


Sample = Annotated[str | None, typer.Option(
    parser=_sample_option, metavar="N|auto|all",
    help="Score a seeded random sample of N examples; auto: a sample grown until the interval is "
         "--sample-width wide; all: every example (default: all up to 20,000 examples, auto above)")]
SampleWidth = Annotated[float, typer.Option(min=0.001, max=0.5,
                                            help="--sample auto: width of the score's 95% interval to reach")]


SkipInvalid = Annotated[bool, typer.Option(help="Skip and count malformed rows instead of failing")]
PromptFile = Annotated[Path | None, typer.Option(help="Your own criteria prompt (YAML)")]
Criteria = Annotated[str | None, typer.Option(help="Comma-separated criteria to embed")]


class RepresentationChoice(str, Enum):
    text = "text"
    criteria = "criteria"
    hybrid = "hybrid"


RepresentationOpt = Annotated[RepresentationChoice | None, typer.Option(
    "--representation",
    help="What the modes are built from: text (raw-text embeddings, no LLM; the validated default), "
         "criteria (LLM criteria) or hybrid (both)")]
TextWeight = Annotated[float | None, typer.Option(
    min=0.0, max=1.0, help="hybrid: weight of the text view, the criteria get the rest (default 0.75)")]
Threshold = Annotated[float | None, typer.Option(
    min=0.01, max=1.99, help="Cosine distance at which modes stop merging (default: the representation's own)")]


def representation_settings(representation: RepresentationChoice | None, text_weight: float | None,
                            threshold: float | None) -> dict[str, Any]:
    """ScoreConfig fields for the representation options (only those given)."""
    out: dict[str, Any] = {}
    rep: dict[str, Any] = {}
    if representation is not None:
        rep["kind"] = representation.value
    if text_weight is not None:
        rep["text_weight"] = text_weight
    if rep:
        out["representation"] = rep
    if threshold is not None:
        out["clustering"] = {"distance_threshold": threshold}
    return out
ApiBase = Annotated[str | None, typer.Option(help="OpenAI-compatible base URL for the LLM")]


def _alpha_option(value: str) -> float:
    """`--alpha LEVEL`, refused at parse time (exit 2, one line) in the words of the other bounds."""
    from clusterdiv.modes.shares import MAX_ALPHA

    try:
        level = float(value)
    except ValueError:
        raise typer.BadParameter("Input should be a number") from None
    if not 0 < level <= MAX_ALPHA:  # NaN fails both comparisons
        raise typer.BadParameter(f"Input should be greater than 0 and at most {MAX_ALPHA:g}")
    return level


Alpha = Annotated[float, typer.Option(
    parser=_alpha_option, metavar="LEVEL",
    help="False discovery rate of the test that flags a real mode missing or under-covered (one-sided Fisher "
         "exact test per mode, Benjamini-Hochberg across modes; default 0.05); modes too small to reach it "
         "are reported as untestable, never as missing. In compare also the level of the pairwise tests")]


def _timeout_option(value: str) -> float:
    """`--timeout SECONDS`, refused at parse time (exit 2, one line) in the words of the other bounds."""
    try:
        seconds = float(value)
    except ValueError:
        raise typer.BadParameter("Input should be a number of seconds") from None
    if not 0 < seconds < float("inf"):  # NaN fails both comparisons
        raise typer.BadParameter("Input should be a finite number greater than 0")
    return seconds


LLMTimeout = Annotated[float | None, typer.Option(
    "--timeout", parser=_timeout_option, metavar="SECONDS",
    help="Seconds to wait for one LLM answer before the attempt times out and is retried (default 120)")]
ApiKey = Annotated[str | None, typer.Option(
    envvar="CLUSTERDIV_API_KEY", show_envvar=True,
    help="LLM API key (default: the provider's own variable, e.g. OPENAI_API_KEY; none needed for a "
         "local --api-base)")]


class InputFormat(str, Enum):
    jsonl = "jsonl"
    json = "json"
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"
    txt = "txt"
    hf_dataset = "hf_dataset"


InputFormatOpt = Annotated[InputFormat | None, typer.Option(
    "--input-format", help="Format of FILE when its name does not tell (no extension, a FIFO, `-` for stdin)")]
Concurrency = Annotated[int, typer.Option(min=1, max=256, help="Concurrent LLM requests")]
ReferenceSize = Annotated[int, typer.Option(min=2, max=MAX_REFERENCE_SIZE,
                                             help="Sample size the normalised score refers to")]
Metrics = Annotated[str, typer.Option(help="Set metrics: all, none, lexical, semantic, reference or names")]
Reference = Annotated[Path | None, typer.Option(help="Real data to compare against (MAUVE, recall, shares)")]
CacheDir = Annotated[Path | None, typer.Option(help="Cache directory (or $CLUSTERDIV_CACHE_DIR)")]
Progress = Annotated[bool, typer.Option(help="Show progress bars on stderr")]
Debug = Annotated[bool, typer.Option(help="Show tracebacks")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Say what the LLM steps would send (calls = cache misses, prompt tokens counted on the "
                      "real prompts, the most it can cost from litellm's offline price list) and call no model")]
MaxCalls = Annotated[int | None, typer.Option(
    min=0, help="Budget: refuse to start an LLM step whose plan needs more calls than are left; stop asking "
                "once this many calls are made (answers paid for are cached: a rerun resumes)")]
MaxCost = Annotated[float | None, typer.Option(
    min=0.0, metavar="USD", help="Budget in US dollars (litellm's price of the usage the provider reports; "
                                 "a model it does not price is not bounded): refused and stopped as --max-calls")]
Partial = Annotated[bool, typer.Option(
    help="With --max-calls/--max-cost: spend the budget even when the plan exceeds it, and stop there "
         "(the report says how far it got; a rerun resumes from the cache)")]
HistoryDb = Annotated[str | None, typer.Option(
    help="History database: a file path or SQLAlchemy URL (or $CLUSTERDIV_HISTORY_DB)")]
Owner = Annotated[str | None, typer.Option(help="Who owns this dataset / produced this batch")]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="Tag the recorded run (repeatable)")]
BatchId = Annotated[str | None, typer.Option(help="Batch id in history (default: content hash prefix)")]


def build_config(*, model: str, embedding_model: str, seed: int, sample: int | str | None,
                 prompt_file: Path | None, criteria: str | None, api_base: str | None, concurrency: int,
                 reference_size: int, metrics: str, representation: RepresentationChoice | None = None,
                 text_weight: float | None = None, threshold: float | None = None,
                 api_key: str | None = None, sample_width: float | None = None,
                 timeout: float | None = None, alpha: float | None = None,
                 spend: dict[str, Any] | None = None) -> Any:
    """The ScoreConfig `score` would build from the same options (metric names validated)."""
    from clusterdiv.core.errors import InputError
    from clusterdiv.llm.structured import LLMSettings
    from clusterdiv.metrics.registry import validate_selection
    from clusterdiv.modes.config import ScoreConfig

    try:
        validate_selection(metrics)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    return ScoreConfig(
        llm=LLMSettings(model=model, seed=seed, api_base=api_base, api_key=api_key, concurrency=concurrency,
                        **({"timeout": timeout} if timeout is not None else {}), **(spend or {})),
        embedding_model=embedding_model,
        prompt_file=str(prompt_file) if prompt_file else None,
        criteria=[c.strip() for c in criteria.split(",") if c.strip()] if criteria else None,
        seed=seed, sample=sample, reference_size=reference_size, metrics=metrics,
        **({"sample_width": sample_width} if sample_width is not None else {}),
        **({"alpha": alpha} if alpha is not None else {}),
        **representation_settings(representation, text_weight, threshold),
    )


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[Any]:
    """Rich bars on stderr when wanted and stderr is a terminal (or forced); plain lines when stderr is
    a log or a pipe, where bars cannot be drawn and a silent run looks hung. Without progress
    (`--no-progress`) a step still says what it is about to pay for before its model calls."""
    from clusterdiv.core.progress import LineProgress

    if enabled and (stderr.is_terminal or os.environ.get("CLUSTERDIV_FORCE_PROGRESS")):
        with RichProgress() as bars:
            yield bars
    else:
        yield LineProgress(lines=enabled)


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a regular file, through symlinks; None for anything else.

    Only regular files hold data a write could destroy: `/dev/stdout` as both input and output is
    one terminal, not one file.
    """
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def _unwritable(path: Path) -> str | None:
    """Why `path` cannot be written (created or replaced), or None."""
    if path.is_dir():
        return "it is a directory"
    if path.exists():
        return None if os.access(path, os.W_OK) else "it is read-only"
    folder = Path(os.path.abspath(path.resolve() if path.is_symlink() else path)).parent
    if not folder.exists():
        return f"its folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    return None if os.access(folder, os.W_OK | os.X_OK) else f"its folder {folder} is read-only"


def check_outputs(outputs: dict[str, Path | None], inputs: Iterable[Path | str | None] = ()) -> None:
    """Refuse, before any work, an output path that would destroy an input or cannot be written.

    `outputs` maps each output flag to its path (None: not given); `inputs` is every file the run
    reads (the batch, the reference, spec and prompt files, the history database). An output is the
    same file as an input when both exist and share (st_dev, st_ino), which catches symlinks and
    hard links, else when both resolve to one path; an existing file inside an input folder (a saved
    dataset) counts too. Standard input (`-`) is no file. Left to the write itself, each case cost the
    whole run and then overwrote the input or died with a raw exception.
    """
    from clusterdiv.core.errors import InputError

    files = [Path(i) for i in inputs if i is not None and str(i) != "-"]
    seen: dict[Path | tuple[int, int], str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        reason = _unwritable(path)
        if reason is not None:
            raise InputError(f"cannot write to {path}: {reason} ({flag})")
        identity = _file_identity(path)
        key = identity or path.resolve()
        if key in seen:
            raise InputError(f"{seen[key]} and {flag} both name {path}; give each output its own file")
        seen[key] = flag
        for source in files:
            same = (identity == _file_identity(source) if identity is not None
                    else not source.exists() and path.resolve() == source.resolve())
            inside = identity is not None and source.is_dir() and path.resolve().is_relative_to(source.resolve())
            if same or inside:
                raise InputError(f"cannot write to {path}: it would overwrite the input {source} ({flag})")


def history_file(db: str | None) -> Path | None:
    """The SQLite file a `--history-db` value (or its default) names; None for a server URL."""
    import sqlalchemy as sa

    from clusterdiv.history.store import resolve_history_url

    try:
        url = sa.make_url(resolve_history_url(db))
    except sa.exc.ArgumentError:
        return None  # not a URL: the store says so in its own words when it opens it
    name = url.database if url.get_backend_name() == "sqlite" else None
    return Path(name) if name and name != ":memory:" else None


def write_text(text: str, output: Path | None, *, note: str = "written to") -> None:
    """To `output` when given (with a note on stderr), else stdout; always newline-terminated."""
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        stderr.print(f"{note} {output}")


def emit_report(report: Any, output_format: OutputFormat, output: Path | None, *,
                markdown: Callable[[Any], str], table: Callable[[Any], None], width: int = 140) -> None:
    """A report as JSON, markdown or a rich table, on stdout or into `output` (noted on stderr).

    `table(console)` draws the table; written to a file it is drawn `width` columns wide, since
    there is no terminal to measure.
    """
    from rich.console import Console

    if output_format is OutputFormat.json:
        text = report.to_json()
    elif output_format is OutputFormat.markdown:
        text = markdown(report)
    elif output is None:
        table(Console())
        return
    else:
        from io import StringIO

        buffer = StringIO()
        table(Console(file=buffer, width=width))
        text = buffer.getvalue()
    write_text(text, output, note="report written to")
