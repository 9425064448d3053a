"""`clusterdiv history`: a dataset's runs, trends, breaches and drops (table, markdown, JSON, PNG)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clusterdiv.cli.common import (
    Debug,
    Format,
    HistoryDb,
    OutputFormat,
    check_outputs,
    handle_errors,
    history_file,
)

if TYPE_CHECKING:
    from rich.console import Console

    from clusterdiv.history.store import HistoryStore


def history(
    dataset: Annotated[str | None, typer.Argument(help="Dataset name; omit to list every dataset")] = None,
    metrics: Annotated[str | None, typer.Option(help="Comma-separated metrics to show (default: all recorded)")] = None,
    last: Annotated[int | None, typer.Option(help="Only the last N runs")] = None,
    chart: Annotated[Path | None, typer.Option(help="Write a PNG trend chart here")] = None,
    drop_share: Annotated[float | None, typer.Option(
        help="Flag moves of more than this share towards less diversity (default: the dataset's, else 0.2)")] = None,
    window: Annotated[int | None, typer.Option(help="Previous runs in the rolling median (default: dataset's, else 5)")] = None,
    output_format: Format = OutputFormat.table,
    history_db: HistoryDb = None,
    debug: Debug = False,
) -> None:
    """Show how a dataset's diversity metrics moved over its recorded batches."""
    with handle_errors(debug):
        from rich.console import Console

        from clusterdiv.core.errors import InputError
        from clusterdiv.history.models import DEFAULT_DROP_SHARE, DEFAULT_DROP_WINDOW, trackable_metrics
        from clusterdiv.history.render import (
            history_json,
            plot_history,
            render_history_markdown,
            render_history_table,
        )
        from clusterdiv.history.store import HistoryStore
        from clusterdiv.history.trend import analyze

        if drop_share is not None and not 0 < drop_share < 1:
            raise InputError("--drop-share must be between 0 and 1")
        check_outputs({"--chart": chart}, [history_file(history_db)])
        with HistoryStore(history_db, create=False) as store:  # a read: never a new empty store
            if dataset is None:
                _list_datasets(store, Console())
                return
            tracking = store.tracking(dataset)
            runs = store.runs(dataset, last=last)
        if tracking is None:
            raise InputError(f"no runs recorded for dataset '{dataset}' in {store.display_url}")
        selected = None
        if metrics:
            selected = [m.strip() for m in metrics.split(",") if m.strip()]
            unknown = [m for m in selected if m not in trackable_metrics()]
            if unknown:
                raise InputError(f"unknown metric {unknown[0]!r}; choose from {', '.join(trackable_metrics())}")
        if not runs and output_format is not OutputFormat.json:
            raise InputError(f"dataset '{dataset}' is tracked but has no recorded runs yet; "
                             f"record one with `clusterdiv score FILE --dataset {dataset}` or `clusterdiv check`")
        share = drop_share if drop_share is not None else (tracking.drop_share or DEFAULT_DROP_SHARE)
        win = window or tracking.drop_window or DEFAULT_DROP_WINDOW
        trends = analyze(runs, tracking=tracking, metrics=selected, drop_share=share, window=win)
        view = {"dataset": dataset, "tracking": tracking, "runs": runs, "trends": trends,
                "drop_share": share, "window": win}
        if output_format is OutputFormat.json:
            sys.stdout.write(history_json(**view) + "\n")
        elif output_format is OutputFormat.markdown:
            sys.stdout.write(render_history_markdown(**view))
        else:
            render_history_table(Console(), **view)
        if chart is not None:
            plot_history(trends, chart, title=f"clusterdiv history: {dataset}")
            Console(stderr=True).print(f"chart written to {chart}")


def _list_datasets(store: HistoryStore, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"Datasets in {store.display_url}")
    for col in ("dataset", "owner", "runs", "last run (UTC)"):
        table.add_column(col)
    for d in store.datasets():
        table.add_row(d["name"], d["owner"] or "", str(d["runs"]),
                      d["last_run"].strftime("%Y-%m-%d %H:%M") if d["last_run"] else "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("history")(history)
