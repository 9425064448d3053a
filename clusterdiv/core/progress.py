"""Progress reporting hook so the library stays UI-free and the CLI can draw rich bars.

A reporter may also take `announce(message)`: one line said before a step's model calls start
(which model, how many calls, the expected time; `llm.structured.announce_calls` writes it), so a
long run never starts silently. The hook is optional: a reporter without it (the service's, a
caller's own) is simply not told. `LineProgress` is the reporter for a stderr that is not a terminal
(a log file, CI, a pipe), where bars cannot be drawn: plain lines, throttled.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

PROGRESS_SECONDS_ENV = "CLUSTERDIV_PROGRESS_SECONDS"
DEFAULT_PROGRESS_SECONDS = 10.0


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


def announces(progress: object | None) -> bool:
    """Whether `progress` takes announcements: callers skip the work of counting calls when not."""
    return callable(getattr(progress, "announce", None))


def format_duration(seconds: float) -> str:
    """`3 min 20 s`, `45 s`, `1 h 5 min`: how long, in the words a person reads at a glance."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def _stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class LineProgress:
    """Progress as plain lines, for a stderr that is not a terminal.

    A line at most every `interval` seconds while a stage advances (`extract 120/289 (41%) · 1 min 2 s
    left`), and one when it finishes (`extract 289/289 (100%) · 3 min 1 s`), so a log shows a long
    step is alive without a line per item. The time left is measured on the items actually computed:
    cache hits come back at once and would make the rest look cheap. `lines=False` keeps only the
    announcements (`--no-progress`: no progress, but a run still says what it is about to pay for).
    """

    def __init__(self, write: Callable[[str], None] | None = None, *, interval: float | None = None,
                 lines: bool = True):
        self._write = write or _stderr_line
        if interval is None:
            try:
                interval = float(os.environ.get(PROGRESS_SECONDS_ENV, DEFAULT_PROGRESS_SECONDS))
            except ValueError:
                interval = DEFAULT_PROGRESS_SECONDS
        self.interval = max(0.0, interval)
        self.lines = lines
        self._stages: dict[str, dict[str, float]] = {}

    def announce(self, message: str) -> None:
        self._write(message)

    def start(self, stage: str, total: int) -> None:
        now = time.monotonic()
        self._stages[stage] = {"total": total, "done": 0, "cached": 0, "started": now, "last": now,
                               "computed_since": now}

    def advance(self, stage: str, n: int = 1, *, cached: bool = False) -> None:
        state = self._stages.get(stage)
        if state is None or n <= 0:  # a batched read that found nothing has nothing to report
            return
        now = time.monotonic()
        if state["done"] == state["cached"] and cached:
            state["computed_since"] = now  # the first computed item's clock starts after the hits
        state["done"] += n
        if cached:
            state["cached"] += n
        if self.lines and state["done"] < state["total"] and now - state["last"] >= self.interval:
            state["last"] = now
            self._write(self._line(stage, state, now))

    def finish(self, stage: str) -> None:
        state = self._stages.pop(stage, None)
        if state is None or not self.lines or not state["total"]:
            return
        self._write(self._line(stage, state, time.monotonic(), final=True))

    @staticmethod
    def _line(stage: str, state: dict[str, float], now: float, *, final: bool = False) -> str:
        done, total = int(state["done"]), int(state["total"])
        percent = 100 * done // total if total else 100
        text = f"{stage} {done}/{total} ({percent}%)"
        if state["cached"]:
            text += f", {int(state['cached'])} cached"
        if final:
            return f"{text} · {format_duration(now - state['started'])}"
        computed = done - state["cached"]
        if computed > 0:
            left = (now - state["computed_since"]) / computed * (total - done)
            text += f" · {format_duration(left)} left"
        return text


@contextmanager
def stage(progress: ProgressReporter | None, name: str, total: int) -> Iterator[Callable[[int], None]]:
    """Open stage `name` on `progress` for `total` items and yield the `advance(k)` callback that
    `embed_texts` takes; the stage is finished however the block ends."""
    reporter = progress or NullProgress()
    reporter.start(name, total)
    try:
        yield lambda k: reporter.advance(name, k)
    finally:
        reporter.finish(name)
