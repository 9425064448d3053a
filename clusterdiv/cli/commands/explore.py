"""`clusterdiv explore`: the collapsed-mode explorer as one self-contained HTML page (and/or JSON).

Scores the batch exactly like `score` (same options, same cache), names every cluster (by its
distinctive words unless `--names llm` or `--naming-model` asks the LLM), lays the examples out in 2-D and writes a page that opens offline. With `--reference` the clusters are the
shared clustering of batch and reference, flagged over/under/missing/batch_only.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from clusterdiv.cli.common import Reference, check_outputs, handle_errors
from clusterdiv.cli.options import ScoreOptions, shared_options, vary


class NamesChoice(str, Enum):
    terms = "terms"
    llm = "llm"


ExploreSample = Annotated[int | None, typer.Option(help="Explore a seeded random sample of N examples")]


@shared_options
def explore_command(
    file: Annotated[Path, typer.Argument(help="The batch (any format `score` reads)")],
    *,
    html: Annotated[Path | None, typer.Option(help="Write the self-contained explorer page here")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the Exploration JSON here")] = None,
    reference: Reference = None,
    title: Annotated[str | None, typer.Option(help="Page title (default: the file name)")] = None,
    names: Annotated[NamesChoice | None, typer.Option(
        help="Where cluster names come from: 'terms' (default: each cluster's most distinctive words, no LLM "
             "call) or 'llm' (one call per cluster; a name with a word absent from the members is refused)",
        show_default=False)] = None,
    naming_model: Annotated[str | None, typer.Option(
        help="Another litellm model for the cluster names (implies --names llm; default: --model)")] = None,
    name_limit: Annotated[int, typer.Option(
        help="With --names llm: name only the N largest clusters with the LLM (the rest by their words)",
        min=0)] = 100,
    downloads: Annotated[bool, typer.Option(
        help="Offer a diverse subset (and, with --reference, real seeds for lacking modes) on the page")] = True,
    subset_budget: Annotated[int | None, typer.Option(
        help="Size of the page's diverse subset (default: half the batch)", min=1)] = None,
    opts: Annotated[ScoreOptions, vary("sample_width", "api_key", "reference", "input_format",
                                       "reference_label_field", sample=ExploreSample)],
) -> None:
    """Explore a batch's semantic modes: named clusters on a 2-D map, one offline HTML page."""
    with handle_errors(opts.debug):
        from clusterdiv.cli.common import stderr
        from clusterdiv.core.errors import InputError
        from clusterdiv.tasks.explore import explore, render_explorer_html

        if html is None and json_out is None:
            raise InputError("nothing to write: pass --html OUT.html and/or --json OUT.json")
        check_outputs({"--html": html, "--json": json_out}, [file, reference, opts.prompt_file])
        config = opts.config()
        with opts.session() as (cache, bars):
            exploration = explore(
                file, reference=reference, config=config, cache=cache, progress=bars, title=title,
                names=names.value if names is not None else None, naming_model=naming_model, name_limit=name_limit,
                downloads=downloads, subset_budget=subset_budget, id_field=opts.id_field,
                load_options=opts.load_options(), reference_load_options=opts.reference_load_options(),
            )
        if json_out is not None:
            json_out.write_text(exploration.model_dump_json(indent=2) + "\n", encoding="utf-8")
            stderr.print(f"exploration JSON written to {json_out}")
        if html is not None:
            html.write_text(render_explorer_html(exploration), encoding="utf-8")
            stderr.print(f"explorer page written to {html}")
        refused = sum(1 for c in exploration.clusters if c.named_by == "terms" and c.naming_error)
        replaced = sum(1 for c in exploration.clusters if c.description_error)
        stderr.print(
            f"{len(exploration.clusters)} clusters, {len(exploration.points)} points on the map "
            f"({exploration.map_method}); {exploration.report.failed.count} failed extraction"
            + ("; names by " + exploration.naming_model if exploration.naming_model else
               "; names from each cluster's distinctive words")
            + (f"; {refused} kept their distinctive-word name (the LLM's failed or was not grounded)"
               if refused else "")
            + (f"; {replaced} LLM descriptions not about their cluster, replaced by criteria" if replaced else ""),
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("explore")(explore_command)
