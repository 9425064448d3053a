"""The diversity service: the library behind an HTTP API with persistent jobs.

`clusterdiv serve` runs it; `create_app(ServiceSettings(...))` builds the FastAPI app for tests
and embedding. Jobs live in the same database as the run history, so a restart (or a second
server on the same database) picks them up; the shared model cache makes a resumed job cheap.
"""

from clusterdiv.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def create_app(settings: ServiceSettings | None = None):  # noqa: ANN201 - FastAPI is imported lazily
    from clusterdiv.service.app import create_app as _create_app

    return _create_app(settings)
