"""Progress reporting hook so the library stays UI-free and the CLI can draw rich bars."""

from __future__ import annotations

from typing import Protocol


class ProgressReporter(Protocol):
    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, n: int = 1, *, cached: bool = False) -> None: ...

    def finish(self, stage: str) -> None: ...


class NullProgress:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, stage: str, n: int = 1, *, cached: bool = False) -> None:
        pass

    def finish(self, stage: str) -> None:
        pass
