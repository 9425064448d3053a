"""Texts in chunks, for metrics that summarise a corpus without holding it: `stream_texts`.

`load_corpus` builds every row into an `Example` (ids, metadata, content hash), which costs memory
in proportion to the corpus. A metric that only needs the texts can instead take them a chunk at
a time: a JSONL file is read line by line and a Parquet file batch by batch, so memory stays that
of one chunk. The rows are checked by the same code as `load_corpus` (`choose_fields`,
`row_text`), so a bad row is the same one-line error, or the same skipped entry, either way.

Two passes over a JSONL file: the text field is chosen from the fields of *all* records (as
`load_corpus` does), so the first pass only collects field names. Inputs that cannot be read
twice or in pieces (standard input, gzip, JSON arrays, CSV, plain text, saved Hugging Face
datasets) are parsed whole by their usual parser and only then handed out in chunks: the same
values and errors, without the per-row `Example`s, but not in bounded memory.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus._arrow import parse_hf_dataset, parse_parquet
from clusterdiv.io.corpus._build import all_skipped, choose_fields, empty_input, row_text
from clusterdiv.io.corpus._lines import decode_line, jsonl_row
from clusterdiv.io.corpus._load import _parse_text_format
from clusterdiv.io.corpus._read import (
    _BOM,
    _GZIP_MAGIC,
    MAX_INPUT_ENV,
    MAX_RECORD_ENV,
    STDIN,
    _too_large,
    max_input_bytes,
    max_record_bytes,
    read_bytes,
    read_stream,
    resolve_format,
)
from clusterdiv.io.corpus._types import Row, SkippedRow, one_line

DEFAULT_CHUNK = 50_000
"""Texts per chunk: large enough that numpy's per-call overhead is negligible, small enough that a
chunk's token arrays are a few tens of MB."""


class TextChunks:
    """The valid texts of a corpus, one list per chunk; iterate once.

    `skipped` and `n_texts` are complete once iteration has finished. Errors (`CorpusError`,
    exit code 2) are raised while iterating, at the row that causes them.
    """

    def __init__(self, rows: Callable[[], Iterator[Row]], *, shown: str, fmt: str, plain: bool,
                 field: str | None, skip_invalid: bool, chunk_size: int) -> None:
        self._rows = rows
        self.path = shown
        self.format = fmt
        self.text_field = None if plain else field
        self._plain = plain
        self._skip_invalid = skip_invalid
        self.chunk_size = chunk_size
        self.skipped: list[SkippedRow] = []
        self.n_texts = 0
        self._started = False

    def __iter__(self) -> Iterator[list[str]]:
        if self._started:
            raise RuntimeError("TextChunks can be iterated only once")
        self._started = True
        chunk: list[str] = []
        n_rows = 0
        for row in self._rows():
            n_rows += 1
            text, reason = row_text(row, self._plain, self.text_field)
            if reason is None:
                assert text is not None
                chunk.append(text)
                if len(chunk) >= self.chunk_size:
                    self.n_texts += len(chunk)
                    yield chunk
                    chunk = []
                continue
            if not self._skip_invalid:
                raise CorpusError(reason, path=self.path, line=row.line)
            self.skipped.append(SkippedRow(line=row.line, reason=reason))
        if chunk:
            self.n_texts += len(chunk)
            yield chunk
        if not n_rows:
            raise empty_input(self.path)
        if not self.n_texts:
            raise all_skipped(self.skipped, self.path)


def stream_texts(
    path: str | Path,
    *,
    text_field: str | None = None,
    skip_invalid: bool = False,
    format: str | None = None,
    chunk_size: int | None = None,
) -> TextChunks:
    """The texts `load_corpus(path, ...)` would load, as chunks of at most `chunk_size` (default
    `DEFAULT_CHUNK`; see the module doc)."""
    chunk_size = DEFAULT_CHUNK if chunk_size is None else chunk_size
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    shown = str(path)
    p = Path(path)
    if shown == STDIN:
        shown = "<stdin>"
        if format is None:
            raise CorpusError("reading standard input needs --input-format (jsonl, json, csv, tsv, txt, parquet)",
                              path=shown)
        fmt, delimiter = resolve_format(Path("stdin." + format), shown, format, check_path=False)
        if fmt == "hf_dataset":
            raise CorpusError("a saved Hugging Face dataset is a directory and cannot come from stdin", path=shown)
        data = read_stream(sys.stdin.buffer, shown, fmt)
        parsed = parse_parquet(io.BytesIO(data), shown) if fmt == "parquet" else \
            _parse_text_format(fmt, data, shown, delimiter)
        return _from_rows(parsed.rows, parsed.fields, parsed.plain, shown, fmt, text_field, skip_invalid, chunk_size)
    fmt, delimiter = resolve_format(p, shown, format)
    if fmt == "parquet" and p.is_file():
        return _parquet(p, shown, text_field, skip_invalid, chunk_size)
    if fmt == "jsonl" and p.is_file() and not _is_gzip(p, shown):
        return _jsonl(p, shown, text_field, skip_invalid, chunk_size)
    if fmt == "parquet":
        parsed = parse_parquet(io.BytesIO(read_bytes(p, shown, fmt)), shown)
    elif fmt == "hf_dataset":
        parsed = parse_hf_dataset(p, shown)
    else:
        parsed = _parse_text_format(fmt, read_bytes(p, shown, fmt), shown, delimiter)
    return _from_rows(parsed.rows, parsed.fields, parsed.plain, shown, fmt, text_field, skip_invalid, chunk_size)


def _from_rows(rows: list[Row], fields: list[str], plain: bool, shown: str, fmt: str, text_field: str | None,
               skip_invalid: bool, chunk_size: int) -> TextChunks:
    if not rows:
        raise empty_input(shown)
    field = choose_fields(fields, plain, shown=shown, text_field=text_field)
    return TextChunks(lambda: iter(rows), shown=shown, fmt=fmt, plain=plain, field=field,
                      skip_invalid=skip_invalid, chunk_size=chunk_size)


def _is_gzip(p: Path, shown: str) -> bool:
    try:
        with open(p, "rb") as handle:
            return handle.read(2) == _GZIP_MAGIC
    except OSError as e:
        raise CorpusError(f"cannot read file: {e.strerror or e}", path=shown) from e


def _lines(p: Path, shown: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its newline) of an uncompressed file, within the size limits.

    The same limits as `read_bytes`: the whole input and each line; a line is read at most one
    byte past its limit, so a file of one huge line stops without filling memory.
    """
    limit, record_limit = max_input_bytes(), max_record_bytes()
    total = 0
    try:
        handle: BinaryIO = open(p, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise CorpusError(f"cannot read file: {e.strerror or e}", path=shown) from e
    with handle:
        number = 0
        while True:
            raw = handle.readline(record_limit + 2)
            if not raw:
                return
            number += 1
            total += len(raw)
            if total > limit:
                raise _too_large("input", limit, MAX_INPUT_ENV, shown)
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if len(raw) > record_limit:
                raise _too_large("a line", record_limit, MAX_RECORD_ENV, shown, line=number)
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            yield number, raw


def _jsonl_rows(p: Path, shown: str) -> Iterator[Row]:
    for number, raw in _lines(p, shown):
        row = jsonl_row(number, *decode_line(raw))
        if row is not None:
            yield row


def _jsonl(p: Path, shown: str, text_field: str | None, skip_invalid: bool, chunk_size: int) -> TextChunks:
    fields: dict[str, None] = {}
    n_rows = 0
    for row in _jsonl_rows(p, shown):  # first pass: the fields of every record, as load_corpus sees them
        n_rows += 1
        if isinstance(row.value, dict):
            fields.update(dict.fromkeys(row.value))
    if not n_rows:
        raise empty_input(shown)
    field = choose_fields(list(fields), False, shown=shown, text_field=text_field)
    return TextChunks(lambda: _jsonl_rows(p, shown), shown=shown, fmt="jsonl", plain=False, field=field,
                      skip_invalid=skip_invalid, chunk_size=chunk_size)


def _parquet(p: Path, shown: str, text_field: str | None, skip_invalid: bool, chunk_size: int) -> TextChunks:
    """Parquet batch by batch, reading only the text column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(p)
        fields = list(parquet.schema_arrow.names)
        n_rows = parquet.metadata.num_rows
    except (pa.ArrowException, OSError) as e:
        raise CorpusError(f"cannot read Parquet file: {one_line(e)}", path=shown) from e
    if not n_rows:
        raise empty_input(shown)
    field = choose_fields(fields, False, shown=shown, text_field=text_field)

    def rows() -> Iterator[Row]:
        number = 0
        try:
            batches: Iterable = parquet.iter_batches(batch_size=chunk_size,
                                                     columns=[field] if field is not None else None)
            for batch in batches:
                for record in batch.to_pylist():
                    number += 1
                    yield Row(number, record)
        except (pa.ArrowException, OSError) as e:
            raise CorpusError(f"cannot read Parquet file: {one_line(e)}", path=shown) from e

    return TextChunks(rows, shown=shown, fmt="parquet", plain=False, field=field,
                      skip_invalid=skip_invalid, chunk_size=chunk_size)
