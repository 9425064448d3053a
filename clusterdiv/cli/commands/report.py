"""`clusterdiv report JOB_ID`: a finished service job's report, or its explorer as one HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clusterdiv.cli.common import Debug, check_outputs, handle_errors, history_file


def report_command(
    job_id: Annotated[str, typer.Argument(help="Job id (as returned by the service)")],
    html: Annotated[Path | None, typer.Option("--html", help="Write the self-contained explorer page here")] = None,
    output_format: Annotated[str, typer.Option("--format", help="json or markdown, printed when --html "
                                               "is not given")] = "json",
    db: Annotated[str | None, typer.Option(help="Jobs/history DB path or URL [default: $CLUSTERDIV_HISTORY_DB]")] = None,
    debug: Debug = False,
) -> None:
    """Export a finished job: the explorer page (score jobs) or the report as JSON/markdown."""
    with handle_errors(debug):
        import json
        import sys

        from clusterdiv.core.errors import InputError
        from clusterdiv.service.jobs import JobStore

        check_outputs({"--html": html}, [history_file(db)])
        with JobStore(db, create=False) as store:  # a read: never a new empty store
            job = store.get(job_id)
            if job is None:
                raise InputError(f"no job {job_id} in {store.url}")
            if job.status != "succeeded":
                raise InputError(f"job {job_id} is {job.status}" + (f": {job.error}" if job.error else ""))
            result = store.result(job_id)
        assert result is not None
        if html is not None:
            if result.exploration is None:
                raise InputError(f"job {job_id} is a {job.kind} job; only score jobs have an explorer page")
            from clusterdiv.tasks.explore import render_explorer_html
            from clusterdiv.tasks.explore.model import Exploration

            html.write_text(render_explorer_html(Exploration.model_validate(result.exploration)), encoding="utf-8")
            typer.echo(f"explorer written to {html}", err=True)
        elif output_format == "markdown":
            sys.stdout.write(result.markdown)
        elif output_format == "json":
            sys.stdout.write(json.dumps(result.result, indent=2, ensure_ascii=False) + "\n")
        else:
            raise InputError(f"unknown --format {output_format!r}; use json or markdown")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
