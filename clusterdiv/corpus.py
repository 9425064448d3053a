"""Loading a corpus from disk into `Example` records.

Every later stage works on `list[Example]`, so this is the one module that knows about file formats.
It is strict by default: a bad row stops the load with the file and line named, because a diversity
score computed over silently dropped rows describes a different dataset from the one the user thinks
they measured. `skip_invalid=True` turns those failures into `skipped` entries the report can show.

Line numbers are 1-based physical lines for text formats (JSONL, JSON, CSV, plain text) and 1-based
row numbers for Parquet and Hugging Face datasets, which have no lines.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, Field

from clusterdiv.errors import CorpusError, CorpusTooLarge
from clusterdiv.records import Example

__all__ = [
    "FORMATS",
    "TEXT_FIELD_CANDIDATES",
    "CorpusFormat",
    "LoadedCorpus",
    "SkippedRow",
    "examples_from_texts",
    "load_corpus",
    "load_corpus_bytes",
]

CorpusFormat = Literal["jsonl", "json", "csv", "parquet", "text", "hf_dataset"]
FORMATS: tuple[str, ...] = get_args(CorpusFormat)

#: Fields tried, in priority order, when no text field is named. Kept short on purpose: guessing
#: between e.g. `question` and `answer` would silently measure the wrong column.
TEXT_FIELD_CANDIDATES: tuple[str, ...] = ("text", "prompt", "instruction", "input")

_EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
}
_FORMAT_ALIASES: dict[str, str] = {"ndjson": "jsonl", "txt": "text", "tsv": "csv", "hf": "hf_dataset"}
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
# `surrogateescape` maps each undecodable byte to U+DC80..U+DCFF; valid UTF-8 never yields those.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_MISSING = object()
_DROP = object()

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


def _too_large(what: str, limit: int, env: str, shown: str, line: int | None = None) -> CorpusTooLarge:
    return CorpusTooLarge(f"{what} exceeds the limit of {limit} bytes (set ${env} in MB to raise it)",
                          path=shown, line=line)


class SkippedRow(BaseModel):
    """A row left out under `skip_invalid`, kept so the report can say what was not measured."""

    line: int | None
    reason: str


class LoadedCorpus(BaseModel):
    """A corpus as read from disk, with what was skipped, so results can be traced to their input."""

    path: str
    format: CorpusFormat
    text_field: str | None = Field(description="the field the text came from; None for plain strings")
    examples: list[Example]
    skipped: list[SkippedRow] = Field(default_factory=list)
    content_hash: str = Field(description="sha256 over the ordered (id, text) pairs")


@dataclass(slots=True)
class _Row:
    """One raw row before validation; a parse failure is carried, not raised, so it can be skipped."""

    line: int | None
    value: object = None
    error: str | None = None


@dataclass
class _Parsed:
    rows: list[_Row]
    fields: list[str]  # ordered union of record keys, or the column names
    plain: bool  # rows are bare strings (plain text, JSON array of strings)
    native: bool = True  # values came from JSON or CSV text, so they are JSON-safe already


# --------------------------------------------------------------------------------------------------
# public API


def load_corpus(
    path: str | Path,
    *,
    text_field: str | None = None,
    id_field: str | None = None,
    label_field: str | None = None,
    skip_invalid: bool = False,
    format: str | None = None,
) -> LoadedCorpus:
    """Read a corpus file or saved Hugging Face dataset into validated examples.

    Raises `CorpusError` (exit code 2) naming the file and line for the first bad row, unless
    `skip_invalid` is set, in which case bad rows are listed in `skipped` instead. A load that ends
    with no examples is always an error: a score over nothing would be meaningless.
    """
    p = Path(path)
    shown = str(path)
    if shown == STDIN:  # `-`: the corpus arrives on standard input
        shown = "<stdin>"
        if format is None:
            raise CorpusError("reading standard input needs --input-format (jsonl, json, csv, tsv, txt, parquet)",
                              path=shown)
        fmt, delimiter = _resolve_format(Path("stdin." + format), shown, format, check_path=False)
        if fmt == "hf_dataset":
            raise CorpusError("a saved Hugging Face dataset is a directory and cannot come from stdin", path=shown)
        data = _read_stream(sys.stdin.buffer, shown, fmt)
        if fmt == "parquet":
            parsed = _parse_parquet(io.BytesIO(data), shown)
        else:
            parsed = _parse_text_format(fmt, data, shown, delimiter)
        return _build(parsed, shown=shown, fmt=fmt,  # type: ignore[arg-type]
                      text_field=text_field, id_field=id_field, label_field=label_field,
                      skip_invalid=skip_invalid)
    fmt, delimiter = _resolve_format(p, shown, format)
    if fmt == "parquet":
        parsed = _parse_parquet(p if p.is_file() else io.BytesIO(_read_bytes(p, shown, fmt)), shown)
    elif fmt == "hf_dataset":
        parsed = _parse_hf_dataset(p, shown)
    else:
        parsed = _parse_text_format(fmt, _read_bytes(p, shown, fmt), shown, delimiter)
    return _build(
        parsed,
        shown=shown,
        fmt=fmt,  # type: ignore[arg-type]
        text_field=text_field,
        id_field=id_field,
        label_field=label_field,
        skip_invalid=skip_invalid,
    )


def load_corpus_bytes(
    data: bytes,
    *,
    filename: str,
    text_field: str | None = None,
    id_field: str | None = None,
    label_field: str | None = None,
    skip_invalid: bool = False,
    format: str | None = None,
    max_bytes: int | None = None,
) -> LoadedCorpus:
    """Parse an uploaded corpus held in memory; `filename` only names it and picks the format.

    The HTTP service uses this so that nothing a request says is ever opened as a path: the
    bytes are the whole input. Errors name `filename` and the line, like `load_corpus`.
    `max_bytes` caps the data after gzip decompression (streamed, so a gzip bomb stops at the
    cap): `CorpusTooLarge` above it.
    """
    shown = Path(filename).name or "upload"
    name = shown.lower()[:-3] if shown.lower().endswith(".gz") else shown.lower()
    ext = Path(name).suffix
    delimiter = "\t" if ext == ".tsv" or (format or "").lower() == "tsv" else ","
    if format is not None:
        fmt = _FORMAT_ALIASES.get(format.lower(), format.lower())
        if fmt not in FORMATS:
            raise CorpusError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}", path=shown)
    elif ext in _EXTENSIONS:
        fmt = _EXTENSIONS[ext]
    else:
        raise CorpusError(
            f"cannot tell the format from the name {shown!r} (known: {', '.join(sorted(_EXTENSIONS))}); "
            "give the format explicitly", path=shown)
    if fmt == "hf_dataset":
        raise CorpusError("a saved Hugging Face dataset is a directory and cannot be uploaded as one file",
                          path=shown)
    data = _normalize_bytes(data, shown, max_bytes=max_bytes)
    if fmt == "parquet":
        parsed = _parse_parquet(io.BytesIO(data), shown)
    else:
        _check_record_sizes(data, fmt, shown)
        parsed = _parse_text_format(fmt, data, shown, delimiter)
    return _build(parsed, shown=shown, fmt=fmt,  # type: ignore[arg-type]
                  text_field=text_field, id_field=id_field, label_field=label_field,
                  skip_invalid=skip_invalid)


def load_records(
    records: Sequence[object],
    *,
    name: str = "(in-memory)",
    text_field: str | None = None,
    id_field: str | None = None,
    label_field: str | None = None,
    skip_invalid: bool = False,
) -> LoadedCorpus:
    """In-memory rows (strings, or dicts like JSONL records), validated exactly like a file's rows."""
    rows = [_Row(i + 1, value) for i, value in enumerate(records)]
    plain = bool(rows) and all(isinstance(r.value, str) for r in rows)
    fields = [] if plain else list(dict.fromkeys(k for r in rows if isinstance(r.value, dict) for k in r.value))
    return _build(_Parsed(rows, fields, plain=plain, native=False), shown=name, fmt="json",
                  text_field=text_field, id_field=id_field, label_field=label_field, skip_invalid=skip_invalid)


def to_corpus(data: object, **options: object) -> LoadedCorpus | list[Example]:
    """Whatever a library call accepts as a dataset, as a LoadedCorpus (or the Examples given).

    A path (any format `load_corpus` reads), a LoadedCorpus, a list of Examples, a list of
    strings or of dicts (records with a text field), a pandas DataFrame, or a Hugging Face
    ``datasets.Dataset``. ``options`` are `load_corpus`'s (``text_field``, ``id_field``, ...).
    """
    if isinstance(data, LoadedCorpus):
        return data
    if isinstance(data, (str, Path)) and not (isinstance(data, str) and "\n" in data):
        return load_corpus(data, **options)  # type: ignore[arg-type]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) \
            and all(isinstance(x, Example) for x in data):  # (an empty list too: the caller says "empty")
        return list(data)  # type: ignore[arg-type]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and data \
            and all(isinstance(x, str) for x in data):
        return examples_from_texts(list(data))  # type: ignore[arg-type]
    record_options = {k: v for k, v in options.items() if k in ("text_field", "id_field", "label_field",
                                                                 "skip_invalid")}
    kind = type(data).__module__.split(".")[0]
    if kind == "pandas" and hasattr(data, "to_dict"):
        return load_records(data.to_dict(orient="records"), name="(pandas DataFrame)",  # type: ignore[attr-defined]
                            **record_options)  # type: ignore[arg-type]
    if kind == "datasets" and hasattr(data, "column_names"):
        if not hasattr(data, "to_list"):
            raise CorpusError("a DatasetDict holds several splits; pass one split, e.g. dataset['train']")
        return load_records(data.to_list(), name="(datasets.Dataset)", **record_options)  # type: ignore[attr-defined,arg-type]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return load_records(list(data), **record_options)  # type: ignore[arg-type]
    raise CorpusError("expected a path, a list of texts, dicts or Examples, a pandas DataFrame or a "
                      f"datasets.Dataset, got {type(data).__name__}")


def as_examples(data: object, *, load_options: dict[str, object] | None = None
                ) -> tuple[list[Example], LoadedCorpus | None]:
    """The examples of any accepted dataset (see :func:`to_corpus`) and the corpus they came from, if any."""
    loaded = to_corpus(data, **(load_options or {}))
    return (list(loaded.examples), loaded) if isinstance(loaded, LoadedCorpus) else (loaded, None)


def load_examples(data: object, **options: object) -> list[Example]:
    """The examples of any accepted dataset (see :func:`to_corpus`), with ids as `load_corpus` makes them.

    A path, a list of strings, dicts or Examples, a pandas DataFrame or a ``datasets.Dataset``;
    ``options`` are `load_corpus`'s (``text_field``, ``id_field``, ``label_field``, ``skip_invalid``).
    """
    examples, _ = as_examples(data, load_options=options)
    if not examples:
        raise CorpusError("the dataset is empty: nothing to measure")
    return examples


def _parse_text_format(fmt: str, data: bytes, shown: str, delimiter: str) -> _Parsed:
    """The byte-oriented formats, shared by files and uploads."""
    if fmt == "jsonl":
        return _parse_jsonl(data)
    if fmt == "json":
        return _parse_json(data, shown)
    if fmt == "csv":
        return _parse_csv(data, shown, delimiter)
    return _parse_text(data)


def examples_from_texts(
    texts: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    labels: Sequence[object] | None = None,
) -> list[Example]:
    """Build examples from in-memory strings with the same id scheme as `load_corpus`.

    This lets a notebook or test feed texts straight into the pipeline and still get ids that match
    what loading the same texts from a file would give. `source_line` is the 1-based position.
    """
    if ids is not None and len(ids) != len(texts):
        raise CorpusError(f"got {len(texts)} texts but {len(ids)} ids")
    if labels is not None and len(labels) != len(texts):
        raise CorpusError(f"got {len(texts)} texts but {len(labels)} labels")
    content_ids = _ContentIds()
    seen: dict[str, int] = {}
    out: list[Example] = []
    for i, text in enumerate(texts):
        position = i + 1
        if not isinstance(text, str):
            raise CorpusError(f"text {position} is {_json_type(text)}, expected a string")
        if not text.strip():
            raise CorpusError(f"text {position} is empty")
        label: str | None = None
        if labels is not None:
            label, reason = _label_value(labels[i], "label")
            if reason is not None:
                raise CorpusError(f"text {position}: {reason}")
        if ids is None:
            out.append(content_ids.make(text, label=label, source_line=position, meta={}))
            continue
        ex_id = str(ids[i])
        if not ex_id.strip():
            raise CorpusError(f"id {position} is empty")
        if ex_id in seen:
            raise CorpusError(f"duplicate id {ex_id!r} at positions {seen[ex_id]} and {position}")
        seen[ex_id] = position
        out.append(Example(id=ex_id, text=text, label=label, source_line=position))
    return out


# --------------------------------------------------------------------------------------------------
# format detection and reading


def _resolve_format(p: Path, shown: str, requested: str | None, *, check_path: bool = True
                    ) -> tuple[str, str]:
    """Pick the reader up front so a wrong guess fails with a clear message, not a parse error."""
    name = p.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    ext = Path(name).suffix
    delimiter = "\t" if ext == ".tsv" or (requested or "").lower() == "tsv" else ","
    if requested is not None:
        fmt = _FORMAT_ALIASES.get(requested.lower(), requested.lower())
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
    if ext not in _EXTENSIONS:
        known = ", ".join(sorted(_EXTENSIONS))
        what = f"extension {ext!r}" if ext else "a file without an extension"
        raise CorpusError(
            f"cannot tell the format from {what} (known: {known}, .gz of the text formats, or a "
            "saved Hugging Face dataset directory); pass --input-format",
            path=shown,
        )
    return _EXTENSIONS[ext], delimiter


def _read_bytes(p: Path, shown: str, fmt: str = "") -> bytes:
    """Read raw bytes so bad UTF-8 can be pinned to a line instead of failing the whole file."""
    try:
        with open(p, "rb") as handle:
            return _read_stream(handle, shown, fmt)
    except OSError as e:
        raise CorpusError(f"cannot read file: {e.strerror or e}", path=shown) from e


def _read_stream(handle: io.BufferedIOBase | io.RawIOBase | object, shown: str, fmt: str) -> bytes:
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
            newline = chunk.rfind(b"\n")
            if newline < 0:
                line_len += len(chunk)
            else:
                line_len = len(chunk) - newline - 1
                lines += chunk.count(b"\n")
            if line_len > record_limit:
                raise _too_large("a line", record_limit, MAX_RECORD_ENV, shown, line=lines)
        chunks.append(chunk)
    data = _normalize_bytes(b"".join(chunks), shown, max_bytes=limit)
    if first == _GZIP_MAGIC:
        _check_record_sizes(data, fmt, shown)
    return data


def _check_record_sizes(data: bytes, fmt: str, shown: str) -> None:
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


def _normalize_bytes(data: bytes, shown: str, *, max_bytes: int | None = None) -> bytes:
    """Undo gzip and a UTF-8 BOM, whether the bytes came from a file or an upload.

    Decompression is streamed against `max_bytes` (default `max_input_bytes()`), so a small
    gzip that unpacks to gigabytes stops at the limit instead of filling memory."""
    if data[:2] == _GZIP_MAGIC:  # by content, so a `--format` override still works on .gz files
        data = _gunzip(data, shown, max_input_bytes() if max_bytes is None else max_bytes)
    if data.startswith(_BOM):  # spreadsheet exports add one; it would otherwise join the first field
        data = data[len(_BOM) :]
    return data


def _gunzip(data: bytes, shown: str, limit: int) -> bytes:
    out: list[bytes] = []
    total = 0
    rest = data
    try:
        while rest[:2] == _GZIP_MAGIC:  # concatenated gzip members are one stream (like gzip.decompress)
            inflater = zlib.decompressobj(wbits=31)
            pending = rest
            while not inflater.eof:
                piece = inflater.decompress(pending, max(1, limit - total + 1))
                total += len(piece)
                if total > limit:
                    raise _too_large("decompressed data", limit, MAX_INPUT_ENV, shown)
                out.append(piece)
                pending = inflater.unconsumed_tail
                if not piece and not pending:
                    break  # input exhausted without the end-of-stream marker
            if not inflater.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            rest = inflater.unused_data
            if rest.strip(b"\0"):
                if rest[:2] != _GZIP_MAGIC:
                    raise OSError("not a gzipped file (trailing garbage)")
            else:
                rest = b""
    except (OSError, EOFError, zlib.error) as e:
        raise CorpusError(f"corrupt gzip data: {_one_line(e)}", path=shown) from e
    return b"".join(out)


def _decoded_lines(data: bytes) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield (line number, text, error): decoding per line lets one bad byte cost one line."""
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            yield number, raw.decode("utf-8"), None
        except UnicodeDecodeError as e:
            yield number, None, f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"


def _parse_jsonl(data: bytes) -> _Parsed:
    rows: list[_Row] = []
    fields: dict[str, None] = {}
    loads = json.loads
    for number, line, error in _decoded_lines(data):
        if line is None:
            rows.append(_Row(number, error=error))
            continue
        if not line.strip():
            continue
        try:
            value = loads(line)
        except json.JSONDecodeError as e:
            rows.append(_Row(number, error=f"invalid JSON: {e.msg} at column {e.colno}"))
            continue
        except RecursionError:
            rows.append(_Row(number, error="invalid JSON: nested too deeply"))
            continue
        if isinstance(value, dict):
            fields.update(dict.fromkeys(value))
        rows.append(_Row(number, value))
    return _Parsed(rows, list(fields), plain=False)


def _parse_text(data: bytes) -> _Parsed:
    rows: list[_Row] = []
    for number, line, error in _decoded_lines(data):
        if line is None:
            rows.append(_Row(number, error=error))
            continue
        if line.endswith("\r"):
            line = line[:-1]
        if line.strip():
            rows.append(_Row(number, line))
    return _Parsed(rows, [], plain=True)


class _LineCounter:
    """Map string offsets to line numbers in one forward pass (offsets are asked in order)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1

    def line_at(self, pos: int) -> int:
        if pos < self._pos:  # not expected, but stay correct
            self._pos, self._line = 0, 1
        self._line += self._text.count("\n", self._pos, pos)
        self._pos = pos
        return self._line


def _parse_json(data: bytes, shown: str) -> _Parsed:
    """Scan the array item by item so each record keeps the line it starts on."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusError(f"invalid UTF-8 (byte 0x{data[e.start]:02x})", path=shown, line=line) from e
    decoder = json.JSONDecoder()
    lines = _LineCounter(text)
    n = len(text)

    def ws(i: int) -> int:
        return _WHITESPACE.match(text, i).end()  # type: ignore[union-attr]

    def fail(message: str, pos: int) -> CorpusError:
        return CorpusError(message, path=shown, line=lines.line_at(min(pos, n)))

    def decode_at(i: int) -> tuple[object, int]:
        try:
            return decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise CorpusError(f"invalid JSON: {e.msg} at column {e.colno}", path=shown, line=e.lineno) from e
        except RecursionError:
            raise CorpusError("invalid JSON: nested too deeply", path=shown, line=lines.line_at(i)) from None

    shape = "expected a JSON array of records (or an object with a single key holding one)"
    i = ws(0)
    if i == n:
        return _Parsed([], [], plain=False)
    wrapped = text[i] == "{"
    if wrapped:  # {"data": [...]}: accepted only with exactly one key, so there is nothing to guess
        i = ws(i + 1)
        if i < n and text[i] == "}":
            raise fail(shape + "; got an empty object", i)
        key, i = decode_at(i)
        i = ws(i)
        if not isinstance(key, str) or i >= n or text[i] != ":":
            raise fail("invalid JSON: expected a string key followed by ':'", i)
        i = ws(i + 1)
    if i >= n or text[i] != "[":
        raise fail(shape, i)
    items: list[_Row] = []
    i = ws(i + 1)
    if i < n and text[i] == "]":
        i += 1
    else:
        while True:
            start = i
            value, i = decode_at(i)
            items.append(_Row(lines.line_at(start), value))
            i = ws(i)
            if i < n and text[i] == ",":
                i = ws(i + 1)
                continue
            if i < n and text[i] == "]":
                i += 1
                break
            raise fail("invalid JSON: expected ',' or ']' after an array item", i)
    i = ws(i)
    if wrapped:
        if i < n and text[i] == ",":
            raise fail(shape + "; the top-level object has more than one key", i)
        if i >= n or text[i] != "}":
            raise fail("invalid JSON: expected '}'", i)
        i = ws(i + 1)
    if i != n:
        raise fail("invalid JSON: extra data after the top-level value", i)

    has_object = any(isinstance(row.value, dict) for row in items)
    plain = not has_object and any(isinstance(row.value, str) for row in items)
    fields: dict[str, None] = {}
    for row in items:
        if isinstance(row.value, dict):
            fields.update(dict.fromkeys(row.value))
    return _Parsed(items, list(fields), plain=plain)


def _parse_csv(data: bytes, shown: str, delimiter: str) -> _Parsed:
    # Decode leniently and check each record afterwards, because a quoted field may span lines and
    # a per-line decode would break records apart.
    text = data.decode("utf-8", errors="surrogateescape")
    old_limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # the default 128 KiB cap rejects long texts
    rows: list[_Row] = []
    header: list[str] | None = None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    previous_end = 0
    try:
        for record in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if not record:  # blank line
                continue
            bad_byte = _escaped_byte(record)
            if header is None:
                if bad_byte:
                    raise CorpusError(f"invalid UTF-8 in the header ({bad_byte})", path=shown, line=start)
                duplicates = sorted({name for name in record if record.count(name) > 1})
                if duplicates:
                    raise CorpusError(
                        f"duplicate column name(s) in the header: {', '.join(duplicates)}",
                        path=shown,
                        line=start,
                    )
                header = record
                continue
            if bad_byte:
                rows.append(_Row(start, error=f"invalid UTF-8 ({bad_byte})"))
            elif len(record) != len(header):
                rows.append(
                    _Row(start, error=f"expected {len(header)} fields as in the header, got {len(record)}")
                )
            else:
                rows.append(_Row(start, dict(zip(header, record, strict=True))))
    except csv.Error as e:
        raise CorpusError(f"malformed CSV: {_one_line(e)}", path=shown, line=reader.line_num) from e
    finally:
        csv.field_size_limit(old_limit)
    return _Parsed(rows, header or [], plain=False)


def _escaped_byte(record: list[str]) -> str | None:
    for value in record:
        match = _ESCAPED_BYTE.search(value)
        if match:
            return f"byte 0x{ord(match.group()) - 0xDC00:02x}"
    return None


def _parse_parquet(p: Path | io.BytesIO, shown: str) -> _Parsed:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow is a declared dependency
        raise CorpusError("reading Parquet needs pyarrow (pip install pyarrow)", path=shown) from e
    rows: list[_Row] = []
    try:
        parquet = pq.ParquetFile(p)
        fields = list(parquet.schema_arrow.names)
        number = 0
        for batch in parquet.iter_batches(batch_size=65536):
            for record in batch.to_pylist():
                number += 1
                rows.append(_Row(number, record))
    except (pa.ArrowException, OSError) as e:
        raise CorpusError(f"cannot read Parquet file: {_one_line(e)}", path=shown) from e
    return _Parsed(rows, fields, plain=False, native=False)


def _parse_hf_dataset(p: Path, shown: str) -> _Parsed:
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a declared dependency
        raise CorpusError(
            "reading a saved Hugging Face dataset needs `datasets` (pip install datasets)", path=shown
        ) from e
    try:
        loaded = datasets.load_from_disk(str(p))
    except Exception as e:  # noqa: BLE001 - `datasets` raises many unrelated types for a bad folder
        raise CorpusError(f"cannot load the saved dataset: {_one_line(e)}", path=shown) from e
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if len(splits) != 1:
            raise CorpusError(
                f"is a DatasetDict with splits {', '.join(splits)}; pass one split's folder, "
                f"e.g. {Path(shown) / splits[0]}",
                path=shown,
            )
        loaded = loaded[splits[0]]
    fields = list(loaded.column_names)
    rows: list[_Row] = []
    number = 0
    for batch in loaded.with_format("arrow").iter(batch_size=65536):
        for record in batch.to_pylist():
            number += 1
            rows.append(_Row(number, record))
    return _Parsed(rows, fields, plain=False, native=False)


# --------------------------------------------------------------------------------------------------
# validation and example building


class _ContentIds:
    """Content-derived ids made unique by occurrence order.

    Duplicate texts are kept (they are exactly what a diversity measure must see), so the second
    copy of a text gets `<id>-2`, the third `<id>-3`: unique within the corpus, and the same on every
    load of the same file.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def make(self, text: str, **fields: object) -> Example:
        example = Example.from_text(text, **fields)
        count = self._counts.get(example.id, 0) + 1
        self._counts[example.id] = count
        if count > 1:
            example = example.model_copy(update={"id": f"{example.id}-{count}"})
        return example


def _build(
    parsed: _Parsed,
    *,
    shown: str,
    fmt: CorpusFormat,
    text_field: str | None,
    id_field: str | None,
    label_field: str | None,
    skip_invalid: bool,
) -> LoadedCorpus:
    if not parsed.rows:
        raise CorpusError("no examples found (the input is empty)", path=shown)
    field: str | None = text_field
    if parsed.plain:
        given = [opt for opt, v in (("text", text_field), ("id", id_field), ("label", label_field)) if v]
        if given:
            raise CorpusError(
                f"--{'/--'.join(g + '-field' for g in given)} cannot be used: this input holds "
                "plain strings, not records",
                path=shown,
            )
    elif parsed.fields:
        field = _choose_text_field(parsed.fields, text_field, shown)
        for option, name in (("--id-field", id_field), ("--label-field", label_field)):
            if name is not None and name not in parsed.fields:
                raise CorpusError(
                    f"{option} {name!r} not found; available fields: {_field_list(parsed.fields)}",
                    path=shown,
                )
    not_meta = {name for name in (field, id_field, label_field) if name is not None}

    examples: list[Example] = []
    skipped: list[SkippedRow] = []
    content_ids = _ContentIds()
    first_line_of_id: dict[str, int | None] = {}

    for row in parsed.rows:
        reason: str | None = row.error
        if reason is None:
            value = row.value
            if parsed.plain:
                if not isinstance(value, str):
                    reason = f"expected a string, got {_json_type(value)}"
                elif not value.strip():
                    reason = "text is empty"
                else:
                    examples.append(content_ids.make(value, source_line=row.line, meta={}))
                    continue
            elif not isinstance(value, dict):
                reason = f"expected a JSON object, got {_json_type(value)}"
            elif field is None:
                reason = "record has no fields"
            else:
                text, reason = _text_value(value, field)
                label: str | None = None
                if reason is None and label_field is not None:
                    label, reason = _label_value(value.get(label_field), label_field)
                ex_id: str | None = None
                if reason is None and id_field is not None:
                    ex_id, reason = _id_value(value.get(id_field, _MISSING), id_field)
                    if reason is None and ex_id in first_line_of_id:
                        reason = f"duplicate id {ex_id!r} (first on line {first_line_of_id[ex_id]})"
                if reason is None:
                    assert text is not None
                    meta = {k: v for k, v in value.items() if k not in not_meta}
                    if not parsed.native:
                        meta = {k: c for k, v in meta.items() if (c := _jsonable(v)) is not _DROP}
                    if ex_id is None:
                        examples.append(content_ids.make(text, label=label, source_line=row.line, meta=meta))
                    else:
                        first_line_of_id[ex_id] = row.line
                        examples.append(
                            Example(id=ex_id, text=text, label=label, source_line=row.line, meta=meta)
                        )
                    continue
        assert reason is not None
        if not skip_invalid:
            raise CorpusError(reason, path=shown, line=row.line)
        skipped.append(SkippedRow(line=row.line, reason=reason))

    if not examples:
        first = skipped[0]
        raise CorpusError(
            f"no valid examples: all {len(skipped)} rows were skipped "
            f"(first, line {first.line}: {first.reason})",
            path=shown,
        )
    return LoadedCorpus(
        path=shown,
        format=fmt,
        text_field=None if parsed.plain else field,
        examples=examples,
        skipped=skipped,
        content_hash=_content_hash(examples),
    )


def _choose_text_field(fields: list[str], requested: str | None, shown: str) -> str:
    """Auto-detect only when unambiguous: measuring the wrong column would give a plausible, wrong score."""
    if requested is not None:
        if requested not in fields:
            raise CorpusError(
                f"text field {requested!r} not found; available fields: {_field_list(fields)}",
                path=shown,
            )
        return requested
    present = [name for name in TEXT_FIELD_CANDIDATES if name in fields]
    if len(present) == 1:
        return present[0]
    if "text" in present:
        return "text"
    if present:
        raise CorpusError(
            f"several possible text fields ({', '.join(present)}); pass --text-field to choose "
            f"(available fields: {_field_list(fields)})",
            path=shown,
        )
    raise CorpusError(
        f"no text field found (looked for {', '.join(TEXT_FIELD_CANDIDATES)}); available fields: "
        f"{_field_list(fields)}; pass --text-field",
        path=shown,
    )


def _text_value(record: dict[str, object], field: str) -> tuple[str | None, str | None]:
    """Return (text, None) or (None, reason)."""
    value = record.get(field, _MISSING)
    if value is _MISSING:
        return None, f"missing text field {field!r}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _chat_text(value, field)
    if not isinstance(value, str):
        return None, f"text field {field!r} is {_json_type(value)}, expected a string"
    if not value.strip():
        return None, f"text field {field!r} is empty"
    return value, None


def _chat_text(turns: list[object], field: str) -> tuple[str | None, str | None]:
    """Join the user turns of a chat record: the prompts are what synthetic-data diversity is about."""
    parts: list[str] = []
    for turn in turns:
        if not isinstance(turn, dict):
            return None, f"field {field!r} mixes chat turns with {_json_type(turn)}"
        role = turn.get("role", turn.get("from"))
        if role not in ("user", "human"):
            continue
        content = turn.get("content", turn.get("value"))
        if isinstance(content, list):  # OpenAI-style content parts
            content = "\n".join(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
        if not isinstance(content, str):
            return None, f"a user turn in {field!r} has {_json_type(content)} content, expected a string"
        if content.strip():
            parts.append(content)
    if not parts:
        return None, f"chat field {field!r} has no user turn with text"
    return "\n\n".join(parts), None


def _id_value(value: object, field: str) -> tuple[str | None, str | None]:
    if value is _MISSING or value is None:
        return None, f"missing id field {field!r}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None, f"id field {field!r} is {_json_type(value)}, expected a string or integer"
    text = str(value)
    if not text.strip():
        return None, f"id field {field!r} is empty"
    return text, None


def _label_value(value: object, field: str) -> tuple[str | None, str | None]:
    """Labels are compared as strings, so `1` from JSON and `"1"` from CSV mean the same label."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None, None
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, (str, int, float)):
        return str(value), None
    return None, f"label field {field!r} is {_json_type(value)}, expected a scalar"


def _jsonable(value: object) -> object:
    """Make meta values JSON-safe: Parquet and Arrow hand back dates, decimals, bytes and NaN."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        converted = {str(k): _jsonable(v) for k, v in value.items()}
        return {k: v for k, v in converted.items() if v is not _DROP}
    if isinstance(value, (list, tuple)):
        return [None if (c := _jsonable(v)) is _DROP else c for v in value]
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _DROP  # binary blobs (images, audio) do not belong in lineage metadata
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _field_list(fields: list[str], limit: int = 20) -> str:
    if not fields:
        return "(none)"
    shown = ", ".join(fields[:limit])
    return shown + (f", ... ({len(fields) - limit} more)" if len(fields) > limit else "")


def _one_line(error: BaseException) -> str:
    """The CLI prints errors on one line; library messages (Arrow's above all) may span several."""
    return " ".join(str(error).split()) or type(error).__name__


def _content_hash(examples: list[Example]) -> str:
    """Hash (id, text) in order, length-prefixed so no two different corpora can share a byte stream."""
    digest = hashlib.sha256()
    for example in examples:
        for part in (example.id, example.text):
            encoded = part.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "big"))
            digest.update(encoded)
    return digest.hexdigest()
