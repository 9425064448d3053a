"""Getting the bytes in: which format a path is, reading files, FIFOs and stdin within the size limits, gzip.

Every limit is checked while reading, so a huge or hostile input stops with a one-line error
before it fills memory."""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from clusterdiv.core.errors import CorpusError, CorpusTooLarge
from clusterdiv.io.corpus._types import FORMATS, one_line

EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
}
FORMAT_ALIASES: dict[str, str] = {"ndjson": "jsonl", "txt": "text", "tsv": "csv", "hf": "hf_dataset"}
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
MAX_INPUT_ENV = "CLUSTERDIV_MAX_INPUT_MB"
MAX_RECORD_ENV = "CLUSTERDIV_MAX_RECORD_MB"
_LINE_FORMATS = ("jsonl", "csv", "text")
_CHUNK = 1 << 20
STDIN = "-"


def max_input_bytes() -> int:
    """Largest input, after gzip decompression: $CLUSTERDIV_MAX_INPUT_MB (default 2048 MB)."""
    return int(float(os.environ.get(MAX_INPUT_ENV) or 2048) * 2**20)


def max_record_bytes() -> int:
    """Longest line (JSONL/CSV/text record): $CLUSTERDIV_MAX_RECORD_MB (default 64 MB)."""
    return int(float(os.environ.get(MAX_RECORD_ENV) or 64) * 2**20)


def _too_large(what: str, limit: int, env: str, shown: str, line: int | None = None, *,
               hint: str | None = None) -> CorpusTooLarge:
    return CorpusTooLarge(f"{what} exceeds the limit of {limit} bytes ({hint or f'set ${env} in MB to raise it'})",
                          path=shown, line=line)


def resolve_format(p: Path, shown: str, requested: str | None, *, check_path: bool = True
                    ) -> tuple[str, str]:
    """Pick the reader up front so a wrong guess fails with a clear message, not a parse error."""
    name = p.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    ext = Path(name).suffix
    delimiter = "\t" if ext == ".tsv" or (requested or "").lower() == "tsv" else ","
    if requested is not None:
        fmt = FORMAT_ALIASES.get(requested.lower(), requested.lower())
        if fmt not in FORMATS:
            raise CorpusError(
                f"unknown format {requested!r}; expected one of {', '.join(FORMATS)}", path=shown
            )
    else:
        fmt = ""
    if not check_path:
        return fmt, delimiter
    if not p.exists():
        raise CorpusError("no such file or directory", path=shown)
    if p.is_dir():
        if fmt not in ("", "hf_dataset"):
            raise CorpusError(f"is a directory, expected a {fmt} file", path=shown)
        if not any((p / marker).is_file() for marker in _HF_MARKERS):
            raise CorpusError(
                "is a directory but not a dataset saved with Hugging Face `save_to_disk` "
                f"(no {' / '.join(_HF_MARKERS)})",
                path=shown,
            )
        return "hf_dataset", delimiter
    if fmt == "hf_dataset":
        raise CorpusError(
            "format hf_dataset expects a directory saved with `datasets` save_to_disk", path=shown
        )
    if fmt:
        return fmt, delimiter
    if ext not in EXTENSIONS:
        known = ", ".join(sorted(EXTENSIONS))
        what = f"extension {ext!r}" if ext else "a file without an extension"
        raise CorpusError(
            f"cannot tell the format from {what} (known: {known}, .gz of the text formats, or a "
            "saved Hugging Face dataset directory); pass --input-format",
            path=shown,
        )
    return EXTENSIONS[ext], delimiter


def read_bytes(p: Path, shown: str, fmt: str = "") -> bytes:
    """Read raw bytes so bad UTF-8 can be pinned to a line instead of failing the whole file."""
    try:
        with open(p, "rb") as handle:
            return read_stream(handle, shown, fmt)
    except OSError as e:
        raise CorpusError(f"cannot read file: {e.strerror or e}", path=shown) from e


def read_stream(handle: io.BufferedIOBase | io.RawIOBase | object, shown: str, fmt: str) -> bytes:
    """Read a file, FIFO or stdin in chunks, stopping at the size limits (never unbounded memory):
    the whole input (`max_input_bytes`) and, for line formats, one line (`max_record_bytes`)."""
    limit, record_limit = max_input_bytes(), max_record_bytes()
    chunks: list[bytes] = []
    total = 0
    line_len = 0  # bytes since the last newline (uncompressed line formats only)
    lines = 1
    first = b""
    while True:
        chunk = handle.read(_CHUNK)  # type: ignore[attr-defined]
        if not chunk:
            break
        if not first:
            first = chunk[:2]
            if first != _GZIP_MAGIC and fmt == "json":
                head = chunk.lstrip(b" \t\r\n")
                if head.startswith(_BOM):
                    head = head[len(_BOM):].lstrip(b" \t\r\n")
                if head and head[:1] not in (b"[", b"{"):
                    raise CorpusError("expected a JSON array of records (or an object with a single key "
                                      "holding one)", path=shown, line=1)
        total += len(chunk)
        if total > limit:
            raise _too_large("input", limit, MAX_INPUT_ENV, shown)
        if fmt in _LINE_FORMATS and first != _GZIP_MAGIC:
            line_len, lines = _check_lines(chunk, line_len, lines, record_limit, shown)
        chunks.append(chunk)
    data = normalize_bytes(b"".join(chunks), shown, max_bytes=limit)
    if first == _GZIP_MAGIC:
        check_record_sizes(data, fmt, shown)
    return data


def check_record_sizes(data: bytes, fmt: str, shown: str) -> None:
    if fmt not in _LINE_FORMATS:
        return
    limit = max_record_bytes()
    if len(data) <= limit:
        return
    start = 0
    number = 1
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if end - start > limit:
            raise _too_large("a line", limit, MAX_RECORD_ENV, shown, line=number)
        start, number = end + 1, number + 1


def normalize_bytes(data: bytes, shown: str, *, max_bytes: int | None = None, limit_hint: str | None = None
                    ) -> bytes:
    """Undo gzip and a UTF-8 BOM, whether the bytes came from a file or an upload.

    Decompression is streamed against `max_bytes` (default `max_input_bytes()`), so a small
    gzip that unpacks to gigabytes stops at the limit instead of filling memory; `limit_hint` says
    what sets a caller's own `max_bytes` (the error otherwise names $CLUSTERDIV_MAX_INPUT_MB)."""
    if data[:2] == _GZIP_MAGIC:  # by content, so a `--format` override still works on .gz files
        data = _gunzip(data, shown, max_input_bytes() if max_bytes is None else max_bytes, limit_hint)
    if data.startswith(_BOM):  # spreadsheet exports add one; it would otherwise join the first field
        data = data[len(_BOM) :]
    return data


def _check_lines(chunk: bytes, line_len: int, lines: int, record_limit: int, shown: str) -> tuple[int, int]:
    """Every line of `chunk` within the record limit, given the `line_len` bytes of line number
    `lines` before it; returns the same two for the end of the chunk.

    Each line is measured (not only the one open at the chunk's end), so the limit is exact and
    the same as the streamed reader's; the scan runs only when the chunk could hold a line over it.
    """
    if line_len + len(chunk) <= record_limit:
        newline = chunk.rfind(b"\n")
        if newline < 0:
            return line_len + len(chunk), lines
        return len(chunk) - newline - 1, lines + chunk.count(b"\n")
    start = 0
    while True:
        newline = chunk.find(b"\n", start)
        end = len(chunk) if newline < 0 else newline
        line_len += end - start
        if line_len > record_limit:
            raise _too_large("a line", record_limit, MAX_RECORD_ENV, shown, line=lines)
        if newline < 0:
            return line_len, lines
        line_len, lines, start = 0, lines + 1, newline + 1


def _gunzip(data: bytes, shown: str, limit: int, limit_hint: str | None = None) -> bytes:
    return b"".join(gunzip_pieces([data], shown, limit, limit_hint))


def gunzip_pieces(pieces: Iterable[bytes], shown: str, limit: int, limit_hint: str | None = None
                  ) -> Iterator[bytes]:
    """Decompress gzip data arriving in pieces, yielding at most `_CHUNK` bytes at a time.

    Concatenated members are one stream (like `gzip.decompress`) and zero padding after the last
    one is ignored; the decompressed total stops at `limit`. Shared by the whole-input reader and
    the streamed one, so both fail with the same messages.
    """
    source = iter(pieces)
    total = 0
    try:
        pending = _fill(b"", source)
        while True:  # one gzip member per round
            inflater = zlib.decompressobj(wbits=31)
            exhausted = False
            while not inflater.eof:
                if not pending:
                    pending = next(source, b"")
                    exhausted = not pending
                piece = inflater.decompress(pending, max(1, min(_CHUNK, limit - total + 1)))
                total += len(piece)
                if total > limit:
                    raise _too_large("decompressed data", limit, MAX_INPUT_ENV, shown, hint=limit_hint)
                if piece:
                    yield piece
                pending = inflater.unconsumed_tail
                if exhausted and not piece:
                    break  # input exhausted without the end-of-stream marker
            if not inflater.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            pending = _fill(inflater.unused_data, source)
            if pending[:2] != _GZIP_MAGIC:
                break
        while pending:  # what follows the last member may only be zero padding
            if pending.strip(b"\0"):
                raise OSError("not a gzipped file (trailing garbage)")
            pending = next(source, b"")
    except (OSError, EOFError, zlib.error) as e:
        raise CorpusError(f"corrupt gzip data: {one_line(e)}", path=shown) from e


def _fill(pending: bytes, source: Iterator[bytes], n: int = 2) -> bytes:
    """`pending` extended from `source` to at least `n` bytes (fewer at the end of the input)."""
    while len(pending) < n and (more := next(source, b"")):
        pending += more
    return pending


def resolve_stdin(requested: str | None) -> tuple[str, str, str | None]:
    """`-` as the input: (the name errors show, the format, the CSV delimiter); stdin has no name to
    guess the format from, and cannot be a saved Hugging Face dataset (a directory)."""
    shown = "<stdin>"
    if requested is None:
        raise CorpusError("reading standard input needs --input-format (jsonl, json, csv, tsv, txt, parquet)",
                          path=shown)
    fmt, delimiter = resolve_format(Path("stdin." + requested), shown, requested, check_path=False)
    if fmt == "hf_dataset":
        raise CorpusError("a saved Hugging Face dataset is a directory and cannot come from stdin", path=shown)
    return shown, fmt, delimiter
