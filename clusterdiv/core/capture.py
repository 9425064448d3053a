"""What a run's libraries say on their own goes into the run's report, not onto the terminal.

A report is the run's account of itself: a warning printed to stderr is lost to `--format json`,
to the service's jobs and to history, and interleaves with the progress bars (issue 32: faiss's
"please provide at least 1131 training points" on every run with a reference while the JSON's
`warnings` stayed `[]`). Two kinds of chatter, two captures:

* Python warnings (`collected_warnings`): `warnings.showwarning` is replaced once by a hook that
  hands a warning to the collector of the current context (a `ContextVar`, so two runs in two
  service threads collect their own) and to the previous hook where no run is collecting. The
  warnings filters still decide what is shown, so a run collects exactly what it would have printed.
* Native libraries writing to file descriptor 2 (`native_stderr`): the descriptor is pointed at a
  temporary file around one call, the lines matching a pattern are taken, and everything else is
  written back to the real stderr unchanged (a progress bar refreshed meanwhile still draws).
  Process-wide, so calls are serialised by a lock; keep the wrapped call short.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_COLLECTOR: ContextVar[list[str] | None] = ContextVar("clusterdiv_warnings", default=None)
_FD_LOCK = threading.Lock()
_INSTALL_LOCK = threading.Lock()


def warning_text(message: Warning | str, category: type[Warning]) -> str:
    """`UserWarning: text`: one report line per warning (the location is the library's, not the user's)."""
    return f"{category.__name__}: {str(message).strip()}"


_NOT_ABOUT_THE_RUN = (DeprecationWarning, PendingDeprecationWarning)
"""A library's deprecations are for its developers, not facts about the run (Ray Data raises them on every
`--engine ray` run): they keep Python's own handling, and the same data gives the same report on any engine."""


class _Hook:
    def __init__(self, fallback: Any):
        self.fallback = fallback

    def __call__(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
        sink = _COLLECTOR.get()
        if sink is None or issubclass(category, _NOT_ABOUT_THE_RUN):
            self.fallback(message, category, filename, lineno, file, line)
        else:
            sink.append(warning_text(message, category))


def _install() -> None:
    with _INSTALL_LOCK:
        if not isinstance(warnings.showwarning, _Hook):  # again after a caller (pytest) swapped its own in
            warnings.showwarning = _Hook(warnings.showwarning)


@contextlib.contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """The Python warnings shown in this context, as report lines (deduplicated, in order) instead of stderr."""
    _install()
    sink: list[str] = []
    token = _COLLECTOR.set(sink)
    try:
        yield sink
    finally:
        _COLLECTOR.reset(token)
        sink[:] = list(dict.fromkeys(sink))


@contextlib.contextmanager
def native_stderr(take: re.Pattern[str]) -> Iterator[list[str]]:
    """Around one call: the lines a native library writes to fd 2 that match `take` (filled on exit);
    the rest goes on to the real stderr."""
    taken: list[str] = []
    with _FD_LOCK:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        tmp = tempfile.TemporaryFile()
        try:
            os.dup2(tmp.fileno(), 2)
            yield taken
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            data = tmp.read().decode("utf-8", "replace")
            tmp.close()
            rest = []
            for line in data.splitlines(keepends=True):
                (taken.append(line.strip()) if take.search(line) else rest.append(line))
            if rest:
                with contextlib.suppress(OSError):
                    os.write(2, "".join(rest).encode("utf-8"))


__all__ = ["collected_warnings", "native_stderr", "warning_text"]
