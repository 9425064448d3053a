"""`clusterdiv demo`: a first run with no data of your own: the two bundled demo sets, scored.

`real` (48 freely worded assistant requests, 12 intents) and `synthetic_collapsed` (48 examples
from a generator that collapsed onto three intents) are scored with the default representation,
the raw text (no LLM call), and printed side by side with the commands to try next.
`--copy-to DIR` writes the two files into DIR first, so the commands it suggests (and the docs'
quick start) run on short relative paths in any installation, not on a path inside site-packages.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from clusterdiv.cli.common import (
    CacheDir,
    Debug,
    Format,
    OutputFormat,
    Progress,
    handle_errors,
    progress_bars,
)

CopyTo = Annotated[Path | None, typer.Option(
    "--copy-to", metavar="DIR", help="Copy the two demo files into DIR (created if absent) and suggest commands on them")]


def demo_command(output_format: Format = OutputFormat.table, cache_dir: CacheDir = None, progress: Progress = True,
                 debug: Debug = False, copy_to: CopyTo = None) -> None:
    """Score the bundled demo sets (real vs collapsed synthetic) and show what to try next."""
    with handle_errors(debug):
        from clusterdiv.core.cache import ModelCache
        from clusterdiv.io import demo
        from clusterdiv.modes.config import ScoreConfig
        from clusterdiv.tasks.score import score

        paths = {name: demo.path(name) for name in demo.DATASETS}
        if copy_to is not None:
            copy_to.mkdir(parents=True, exist_ok=True)
            paths = {name: Path(shutil.copy(path, copy_to / path.name)) for name, path in paths.items()}
            if copy_to.resolve() == Path.cwd().resolve():
                paths = {name: Path(path.name) for name, path in paths.items()}
        with ModelCache(cache_dir) as cache, progress_bars(progress) as bars:
            reports = {name: score(path, config=ScoreConfig(), cache=cache, progress=bars,
                                   load_options={"id_field": "id", "label_field": "intent"})
                       for name, path in paths.items()}
        real, synthetic = (str(paths[n]) for n in demo.DATASETS)
        next_steps = [
            ("score your own data", "clusterdiv score YOUR_DATA.jsonl"),
            ("the synthetic set against the real one", f"clusterdiv score {synthetic} --reference {real}"),
            ("both side by side, with a significance test", f"clusterdiv compare {real} {synthetic}"),
            ("the collapsed modes on a map", f"clusterdiv explore {synthetic} --html modes.html"),
        ]
        if output_format is OutputFormat.json:
            payload = {"reports": {n: json.loads(r.to_json()) for n, r in reports.items()},
                       "next": [command for _, command in next_steps]}
            sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
            return
        lines = ["| demo set | examples | modes | score | normalised (95% CI) |", "| --- | ---: | ---: | ---: | --- |"]
        for name, r in reports.items():
            ci = r.ci95_normalized
            lines.append(f"| {name} | {r.n_samples} | {r.n_modes} | {r.score:.3f} | {r.score_normalized:.3f}"
                         + (f" ({ci[0]:.3f}-{ci[1]:.3f}) |" if ci else " |"))
        if output_format is OutputFormat.markdown:
            lines += ["", "Try next:", ""] + [f"- {what}: `{command}`" for what, command in next_steps]
            sys.stdout.write("\n".join(lines) + "\n")
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        table = Table(title="clusterdiv demo: diversity = distinct semantic modes / samples")
        for col, justify in (("demo set", "left"), ("examples", "right"), ("modes", "right"), ("score", "right"),
                             ("normalised (95% CI)", "right")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for name, r in reports.items():
            ci = r.ci95_normalized
            table.add_row(name, str(r.n_samples), str(r.n_modes), f"{r.score:.3f}",
                          f"{r.score_normalized:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else ""))
        console.print(table)
        ranked = sorted(reports, key=lambda n: reports[n].score_normalized or 0.0)
        low, high = ranked[0], ranked[-1]
        console.print(f"{low} has fewer distinct modes per example than {high}: its generator collapsed onto a "
                      "few intents.", highlight=False)
        console.print("[dim]modes from raw-text embeddings (no LLM call); nothing was recorded in history[/dim]",
                      highlight=False)
        console.print("\n[bold]Try next[/bold]")
        for what, command in next_steps:
            console.print(f"  {what}:\n    [cyan]{command}[/cyan]", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
