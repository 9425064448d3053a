"""`clusterdiv serve`: the HTTP service (FastAPI + uvicorn) with persistent jobs."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterdiv.cli.common import CacheDir, Debug, RepresentationOpt, handle_errors


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to bind; anything but loopback needs a token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    db: Annotated[str | None, typer.Option(help="Jobs/history DB path or SQLAlchemy URL "
                                           "[default: $CLUSTERDIV_HISTORY_DB or the user data dir]")] = None,
    cache_dir: CacheDir = None,
    workers: Annotated[int, typer.Option(help="Jobs run at once")] = 2,
    llm_concurrency: Annotated[int, typer.Option(help="LLM calls in flight per job")] = 4,
    max_examples: Annotated[int, typer.Option(help="Most examples per job (413 above)")] = 5000,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body in MB (413 above)")] = 20.0,
    model: Annotated[str | None, typer.Option(help="Default LLM for jobs")] = None,
    representation: RepresentationOpt = None,
    allow_model: Annotated[list[str] | None, typer.Option(help="Further LLMs a job may ask for (repeatable)")] = None,
    allow_host: Annotated[list[str] | None, typer.Option(
        help="Host names clients may use besides the bound address and loopback (repeatable; "
             "or $CLUSTERDIV_ALLOWED_HOSTS, comma-separated)")] = None,
    body_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a request body may stall before a 408")] = 30.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    debug: Debug = False,
) -> None:
    """Serve the API: submit score/compare/audit-tail/select/seeds jobs, poll them, fetch reports and the explorer.

    The bearer token is read from $CLUSTERDIV_API_TOKEN (never a flag: `ps` would show it).
    OpenAPI docs are at /docs.
    """
    with handle_errors(debug):
        import uvicorn

        from clusterdiv.core.errors import InputError
        from clusterdiv.service import create_app
        from clusterdiv.service.settings import TOKEN_ENV_VAR, ServiceSettings, is_loopback

        overrides: dict[str, object] = {
            "db": db, "cache_dir": str(cache_dir) if cache_dir else None, "workers": workers,
            "llm_concurrency": llm_concurrency, "max_examples_per_job": max_examples,
            "max_body_bytes": int(max_body_mb * 1024 * 1024), "default_model": model,
            "allowed_models": allow_model or None, "bind_host": host, "allowed_hosts": allow_host or None,
            "body_idle_timeout_s": body_timeout,
            "default_representation": representation.value if representation else None,
        }
        settings = ServiceSettings.from_env(**overrides)
        if settings.token is None and not is_loopback(host):
            raise InputError(f"refusing to serve on {host} without authentication: set {TOKEN_ENV_VAR} "
                             "(clients send it as 'Authorization: Bearer ...'), or bind to 127.0.0.1")
        from clusterdiv.service.jobs import JobStore

        JobStore(settings.db).close()  # a broken database is one line now, not a failed lifespan later
        typer.echo(f"clusterdiv service on http://{host}:{port} (docs at /docs); auth "
                   f"{'on' if settings.token else 'off (loopback only)'}; {settings.workers} workers", err=True)
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
