"""`clusterdiv track`: a dataset's owner and the thresholds its batches must meet."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from clusterdiv.cli.common import Debug, HistoryDb, Owner, handle_errors


def parse_bounds(items: list[str] | None, option: str) -> dict[str, float]:
    """`["score_normalized=0.35", ...]` -> {metric: value}; bad syntax is bad input (exit 2)."""
    from clusterdiv.core.errors import InputError

    out: dict[str, float] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            value = float(raw)
        except ValueError:
            raise InputError(f"{option} expects METRIC=NUMBER, got {item!r}") from None
        if not math.isfinite(value):
            raise InputError(f"{option} {item!r}: thresholds must be finite numbers (not nan or inf)")
        out[name.strip()] = value
    return out


def track(
    dataset: Annotated[str, typer.Argument(help="Dataset name (as recorded by score/check)")],
    owner: Owner = None,
    min_: Annotated[list[str] | None, typer.Option("--min", help="METRIC=VALUE: breach when below (repeatable)")] = None,
    max_: Annotated[list[str] | None, typer.Option("--max", help="METRIC=VALUE: breach when above (repeatable)")] = None,
    drop_share: Annotated[float | None, typer.Option(
        help="Fail `check` when score_normalized or a thresholded metric moves this share (e.g. 0.2) "
             "towards less diversity vs the rolling median")] = None,
    window: Annotated[int | None, typer.Option(min=1, help="Previous runs in the rolling median (default 5)")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="Remove a metric's rule (repeatable)")] = None,
    clear: Annotated[bool, typer.Option(help="Remove every rule and the drop rule first")] = False,
    history_db: HistoryDb = None,
    debug: Debug = False,
) -> None:
    """Set (or show, with no options) a dataset's owner, thresholds and drop rule.

    Metric names: score, score_normalized and every set metric (self_bleu, vendi, mauve, ...).
    A metric's new bound is merged with its existing rule; --remove or --clear drops rules.
    """
    with handle_errors(debug):
        from rich.console import Console
        from rich.table import Table

        from clusterdiv.core.errors import InputError
        from clusterdiv.history.models import Threshold, check_dataset_name, check_rules
        from clusterdiv.history.store import HistoryStore, NoHistoryDatabase

        check_dataset_name(dataset)
        mins, maxs = parse_bounds(min_, "--min"), parse_bounds(max_, "--max")
        check_rules(Threshold(metric=m, min=mins.get(m), max=maxs.get(m)) for m in dict.fromkeys([*mins, *maxs]))
        changed = bool(owner is not None or mins or maxs or drop_share is not None or window or clear or remove)

        def untracked(why: str = "") -> InputError:
            return InputError(f"dataset '{dataset}' is not tracked yet{why}; give --owner, --min, --max or --drop-share")

        try:
            store = HistoryStore(history_db, create=changed)  # only showing: never a new empty store
        except NoHistoryDatabase as exc:
            raise untracked(f" ({exc})") from None
        with store:
            existing = store.tracking(dataset)
            old = {} if clear or existing is None else dict(existing.thresholds)
            rules = []
            for metric in dict.fromkeys([*mins, *maxs]):
                prev = old.get(metric, Threshold(metric=metric))
                rule = Threshold(metric=metric, min=mins.get(metric, prev.min), max=maxs.get(metric, prev.max))
                if rule.min is not None and rule.max is not None and rule.min > rule.max:
                    raise InputError(f"{metric}: minimum {rule.min:g} is above maximum {rule.max:g}")
                rules.append(rule)
            if existing is None and not changed:
                raise untracked()
            if changed:
                tracking = store.set_tracking(dataset, owner=owner, rules=rules, drop_share=drop_share,
                                              drop_window=window, clear=clear, remove=remove or ())
            else:
                tracking = existing
            n_runs = store.count_runs(dataset)
        console = Console()
        console.print(f"[bold]{dataset}[/bold]  owner {tracking.owner or '(none)'}  {n_runs} recorded runs",
                      highlight=False)
        table = Table(title="Rules checked by `clusterdiv check`", min_width=60)
        table.add_column("metric")
        table.add_column("rule")
        for rule in tracking.thresholds.values():
            table.add_row(rule.metric, rule.describe())
        if tracking.drop_share is not None:
            table.add_row("drop", f"score_normalized and the metrics above may not move more than "
                                  f"{tracking.drop_share:.0%} towards less diversity vs the median of the "
                                  f"previous {tracking.drop_window} runs")
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("track")(track)
