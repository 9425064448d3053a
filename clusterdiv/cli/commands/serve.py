"""`clusterdiv serve`: the HTTP service (FastAPI + uvicorn) with persistent jobs."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from clusterdiv.cli.common import CacheDir, Debug, RepresentationOpt, handle_errors

MB = 1024 * 1024
SETTING_OPTIONS = {"max_examples_per_job": "max_examples", "max_body_bytes": "max_body_mb",
                   "body_idle_timeout_s": "body_timeout", "header_timeout_s": "header_timeout",
                   "bind_host": "host", "allowed_hosts": "allow_host",
                   "allowed_models": "allow_model", "default_model": "model",
                   "default_representation": "representation"}
"""ServiceSettings field -> the `serve` option that sets it, where the names differ."""


def service_settings(overrides: dict[str, Any]) -> Any:
    """ServiceSettings from the options, a bound it breaks refused as one line naming the option."""
    from pydantic import ValidationError

    from clusterdiv.core.errors import InputError
    from clusterdiv.service.settings import ServiceSettings

    try:
        return ServiceSettings.from_env(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        message, bound = error["msg"], (error.get("ctx") or {}).get("ge")
        if field == "max_body_bytes" and bound is not None:  # the option is in MB, the setting in bytes
            message = f"Input should be at least {bound / MB:.3g} MB ({bound} bytes)"
        raise InputError(message, option=SETTING_OPTIONS.get(field, field)) from None


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to bind; anything but loopback needs a token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        min=1, max=65535, help="TCP port, 1-65535 (not 0: a random port would not be the one printed)")] = 8000,
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
    header_timeout: Annotated[float, typer.Option(
        min=0.1, help="Seconds a connection may take to send its request headers before a 408")] = 10.0,
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster every job runs extraction and embedding on (host:port or ray://host:10001); "
             "default: none, jobs run in the workers and a job cannot ask for Ray")] = None,
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
        from clusterdiv.service.settings import TOKEN_ENV_VAR, is_loopback

        settings = service_settings({
            "db": db, "cache_dir": str(cache_dir) if cache_dir else None, "workers": workers,
            "llm_concurrency": llm_concurrency, "max_examples_per_job": max_examples,
            # nan and inf stay floats, so the setting refuses them instead of int() raising
            "max_body_bytes": int(max_body_mb * MB) if math.isfinite(max_body_mb) else max_body_mb,
            "default_model": model, "allowed_models": allow_model or None, "bind_host": host,
            "allowed_hosts": allow_host or None, "body_idle_timeout_s": body_timeout,
            "header_timeout_s": header_timeout, "ray_address": ray_address,
            "default_representation": representation.value if representation else None,
        })
        if settings.token is None and not is_loopback(host):  # a blank token is none (ServiceSettings)
            raise InputError(f"refusing to serve on {host} without authentication: set {TOKEN_ENV_VAR} "
                             "to a non-blank token (clients send it as 'Authorization: Bearer ...'), "
                             "or bind to 127.0.0.1")
        if settings.ray_address:
            import importlib.util

            if importlib.util.find_spec("ray") is None:
                raise InputError("a Ray cluster needs Ray installed: pip install 'clusterdiv[ray]'",
                                 option="ray_address")
        from clusterdiv.service.jobs import JobStore

        JobStore(settings.db).close()  # a broken database is one line now, not a failed lifespan later
        typer.echo(f"clusterdiv service on http://{host}:{port} (docs at /docs); auth "
                   f"{'on' if settings.token else 'off (loopback only)'}; {settings.workers} workers; "
                   f"engine {settings.engine}", err=True)
        from clusterdiv.service.security import header_timeout_protocol

        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level,
                    http=header_timeout_protocol(settings.header_timeout_s))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
