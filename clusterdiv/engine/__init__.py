"""Where the model stages compute their cache misses: in this process, or on a Ray cluster.

Extraction and embedding are the only stages whose cost grows with the model, so they are the
only ones an engine runs. The stage code keeps the cache: it reads it, hands the engine only the
misses, cut into chunks, and writes each chunk's answers into the cache as the chunk comes back,
so a job killed half-way resumes without paying again, whichever engine ran it. Clustering,
scoring and the report stay on the driver (see README "Scale out" for why).

* `local` (the default): today's in-process code path; `current()` is None and the stages do what
  they always did.
* `ray`: the chunks become a Ray Dataset, mapped with `map_batches` over an actor pool, one model
  loaded per actor. A worker that dies mid-chunk is restarted and the chunk retried by Ray; a
  chunk that fails for good comes back as a `ChunkFailure` with the reason, which the stage turns
  into the same failure records the in-process path makes.

A stage asks for the engine of the run with `current()`; `build_mode_space` sets it with
`use(settings)` for the extraction and embedding of one run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clusterdiv.core.errors import ClusterdivError, InputError

EngineName = Literal["local", "ray"]

KILL_ONCE_ENV = "CLUSTERDIV_RAY_KILL_ONCE"
"""Fault injection: a file path. The first Ray worker to start a chunk while the file does not exist
creates it and exits at once, as a killed process would; how the tests kill a worker mid-run."""


class EngineError(ClusterdivError):
    """The cluster could not be reached or a stage could not complete on it."""


class EngineUnreachable(EngineError, InputError):
    """Nothing answers at the cluster address the user gave: bad input (exit 2), found before any work."""


class EngineSettings(BaseModel):
    """Which engine computes the model stages' cache misses; never part of a cache key."""

    model_config = ConfigDict(extra="forbid")

    name: EngineName = "local"
    address: str | None = Field(default=None, description="Ray: the cluster to join (None: start one here)")
    workers: int | None = Field(default=None, ge=1, description="Ray: actors per stage (None: the cluster's CPUs)")
    extract_chunk: int = Field(default=4, ge=1, description="examples per extraction task")
    max_retries: int = Field(default=3, ge=0, description="Ray: restarts of a dead worker and retries of its chunk")

    @classmethod
    def from_options(cls, name: str, address: str | None = None) -> EngineSettings:
        """The settings of `--engine NAME --ray-address ADDR`: a bad name or a stray address is an InputError."""
        if name not in ("local", "ray"):
            raise InputError(f"unknown engine {name!r}; choose local or ray", option="engine")
        if address is not None and name != "ray":
            raise InputError("a Ray address needs the ray engine", option="ray_address")
        return cls(name=name, address=address)  # type: ignore[arg-type]

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


@dataclass(frozen=True)
class ChunkFailure:
    """A chunk no worker could finish: every item in it failed for `reason`."""

    reason: str


Worker = Callable[[Any], Any]
"""A picklable callable built once per worker process (it loads its model lazily), mapping one chunk
to its result."""


class Engine(Protocol):
    name: str
    settings: EngineSettings

    def map(self, worker: Worker, chunks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """(chunk index, result or `ChunkFailure`) for every chunk, in the order they finish."""
        ...


_CURRENT: ContextVar[Engine | None] = ContextVar("clusterdiv_engine", default=None)


def current() -> Engine | None:
    """The distributed engine of the running stage, or None for the in-process path."""
    return _CURRENT.get()


def connect(settings: EngineSettings) -> Engine | None:
    """The engine `settings` names (None for `local`), connected."""
    if settings.name == "local":
        return None
    from clusterdiv.engine._ray import RayEngine

    return RayEngine(settings)


@contextmanager
def use(settings: EngineSettings | None) -> Iterator[Engine | None]:
    """Run the stages inside with the engine `settings` names."""
    engine = connect(settings) if settings is not None else None
    token = _CURRENT.set(engine)
    try:
        yield engine
    finally:
        _CURRENT.reset(token)


def chunked(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


__all__ = ["KILL_ONCE_ENV", "ChunkFailure", "Engine", "EngineError", "EngineName", "EngineSettings", "Worker", "chunked", "connect",
           "current", "use"]
