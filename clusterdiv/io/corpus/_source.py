"""Physical lines of a file, FIFO or standard input, gzip or not, read lazily within the size limits.

The streamed reader (`_stream.py`) takes its lines from here; `_read.py` reads the same inputs
whole. Both apply the same limits with the same messages: the whole input (the file as stored,
and after gzip decompression), each line (`max_record_bytes`), and gzip's own checks
(`gunzip_pieces`, shared). A regular file's stored size is checked before any line is read, as the
whole-file reader would; a FIFO or stdin is counted as it is read, so an input over the limit can
stop after some of its rows have already been handed out.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus._read import (
    _BOM,
    _CHUNK,
    _GZIP_MAGIC,
    MAX_INPUT_ENV,
    MAX_RECORD_ENV,
    _fill,
    _too_large,
    gunzip_pieces,
    max_input_bytes,
    max_record_bytes,
)

Line = tuple[int, bytes, bool]
"""(1-based line number, the line without its newline, whether a newline ended it)."""


def file_lines(p: Path, shown: str) -> Iterator[Line]:
    """The lines of a file or FIFO; opened on the first `next`, closed when exhausted or dropped."""
    try:
        handle: BinaryIO = open(p, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise CorpusError(f"cannot read file: {e.strerror or e}", path=shown) from e
    with handle:
        try:
            stat = os.fstat(handle.fileno())
        except OSError:
            stat = None
        limit = max_input_bytes()
        if stat is not None and p.is_file() and stat.st_size > limit:
            raise _too_large("input", limit, MAX_INPUT_ENV, shown)
        yield from handle_lines(handle, shown)


def handle_lines(handle: BinaryIO, shown: str) -> Iterator[Line]:
    """The lines of an open binary stream (a file, FIFO or `sys.stdin.buffer`)."""
    limit, record_limit = max_input_bytes(), max_record_bytes()
    raw = _pieces(lambda: handle.read(_CHUNK), shown, limit)
    head = _fill(b"", raw)
    gzipped = head[:2] == _GZIP_MAGIC
    pieces = _chain(head, raw)
    if gzipped:  # detected by content, as the whole-input reader does
        pieces = gunzip_pieces(pieces, shown, limit)
    reader = io.BufferedReader(_PieceStream(pieces), buffer_size=_CHUNK)
    number = 0
    while True:
        try:
            raw_line = reader.readline(record_limit + 2 + (len(_BOM) if gzipped and not number else 0))
        except OSError as e:
            raise CorpusError(f"cannot read file: {e.strerror or e}", path=shown) from e
        if not raw_line:
            return
        number += 1
        ended = raw_line.endswith(b"\n")
        if ended:
            raw_line = raw_line[:-1]
        if number == 1 and gzipped and raw_line.startswith(_BOM):
            raw_line = raw_line[len(_BOM):]  # gzip: the BOM goes before the line is measured (`normalize_bytes`)
        if len(raw_line) > record_limit:
            raise _too_large("a line", record_limit, MAX_RECORD_ENV, shown, line=number)
        if number == 1 and raw_line.startswith(_BOM):
            raw_line = raw_line[len(_BOM):]
        yield number, raw_line, ended


def _pieces(read: Callable[[], bytes], shown: str, limit: int) -> Iterator[bytes]:
    total = 0
    while True:
        try:
            piece = read()
        except OSError as e:
            raise CorpusError(f"cannot read file: {e.strerror or e}", path=shown) from e
        if not piece:
            return
        total += len(piece)
        if total > limit:
            raise _too_large("input", limit, MAX_INPUT_ENV, shown)
        yield piece


def _chain(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


class _PieceStream(io.RawIOBase):
    """A raw stream over an iterator of byte pieces, so `io.BufferedReader` can split it into lines."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        while not len(self._view):
            piece = next(self._pieces, b"")
            if not piece:
                return 0
            self._view = memoryview(piece)
        n = min(len(buffer), len(self._view))
        buffer[:n] = self._view[:n]
        self._view = self._view[n:]
        return n
