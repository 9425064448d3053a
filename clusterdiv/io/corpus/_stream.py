"""Texts in chunks, for metrics that summarise a corpus without holding it: `stream_texts`.

`load_corpus` builds every row into an `Example` (ids, metadata, content hash), which costs memory
in proportion to the corpus. A metric that only needs the texts can instead take them a chunk at
a time, so memory stays that of one chunk: JSONL, CSV/TSV and plain text are read line by line
(from a file, a FIFO or standard input, gzip-compressed or not: `_source.py`), Parquet files batch
by batch. The rows are made and checked by the same code as `load_corpus` (`jsonl_row`,
`text_row`, `csv_records`, `choose_fields`, `row_text`), so a bad row is the same one-line error,
or the same skipped entry, either way.

JSONL needs the text field before the first text is handed out, and `load_corpus` chooses it from
the fields of *all* records. The first chunk of rows is parsed and held; when its fields already
settle the choice (the named `--text-field`, or a `text` field, is among them) nothing else is
read first. Otherwise the rest of the file is scanned once without parsing JSON, except on the
rare lines whose bytes could hold a candidate field name (`_candidates_after`); only when that
scan cannot settle it either (the choice would fail, or no record has fields) is every record
parsed first, as before, for the exact field list. Standard input cannot be read twice, so an
unsettled JSONL choice there holds the rest of the rows, like `load_corpus`.

Still parsed whole and only then handed out in chunks (the same values and errors, without the
per-row `Example`s, but not in bounded memory): JSON arrays (no incremental JSON parser is
installed), Parquet from standard input, saved Hugging Face datasets (already memory-mapped).

Errors about the whole input (over the size limit, corrupt gzip, malformed CSV) are raised when
the reader reaches them. With `skip_invalid` off, a file that also has a bad row before that point
fails on the bad row, where `load_corpus`, which reads everything first, names the whole-input
error; a file with one fault fails the same way on both paths.
"""

from __future__ import annotations

import io
import itertools
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus._arrow import parse_hf_dataset, parse_parquet
from clusterdiv.io.corpus._build import all_skipped, choose_fields, empty_input, row_text
from clusterdiv.io.corpus._csv import csv_records
from clusterdiv.io.corpus._lines import decode_line, jsonl_row, text_row
from clusterdiv.io.corpus._load import parse_text_format
from clusterdiv.io.corpus._read import STDIN, read_bytes, read_stream, resolve_format, resolve_stdin
from clusterdiv.io.corpus._source import Line, file_lines, handle_lines
from clusterdiv.io.corpus._types import TEXT_FIELD_CANDIDATES, Row, SkippedRow, one_line

DEFAULT_CHUNK = 50_000
"""Texts per chunk: large enough that numpy's per-call overhead is negligible, small enough that a
chunk's token arrays are a few tens of MB."""
_LINE_FORMATS = ("jsonl", "csv", "text")


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
    args = (text_field, skip_invalid, chunk_size)
    if shown == STDIN:
        shown, fmt, delimiter = resolve_stdin(format)
        if fmt in _LINE_FORMATS:
            return _by_lines(fmt, lambda: handle_lines(sys.stdin.buffer, shown), None, shown, delimiter, *args)
        data = read_stream(sys.stdin.buffer, shown, fmt)
        parsed = parse_parquet(io.BytesIO(data), shown) if fmt == "parquet" else \
            parse_text_format(fmt, data, shown, delimiter)
        return _from_rows(parsed.rows, parsed.fields, parsed.plain, shown, fmt, *args)
    fmt, delimiter = resolve_format(p, shown, format)
    if fmt == "parquet" and p.is_file():
        return _parquet(p, shown, *args)
    if fmt in _LINE_FORMATS:
        lines = lambda: file_lines(p, shown)  # noqa: E731
        return _by_lines(fmt, lines, lines if p.is_file() else None, shown, delimiter, *args)
    if fmt == "parquet":
        parsed = parse_parquet(io.BytesIO(read_bytes(p, shown, fmt)), shown)
    elif fmt == "hf_dataset":
        parsed = parse_hf_dataset(p, shown)
    else:
        parsed = parse_text_format(fmt, read_bytes(p, shown, fmt), shown, delimiter)
    return _from_rows(parsed.rows, parsed.fields, parsed.plain, shown, fmt, *args)


def _by_lines(fmt: str, lines: Callable[[], Iterator[Line]], reread: Callable[[], Iterator[Line]] | None,
              shown: str, delimiter: str, text_field: str | None, skip_invalid: bool, chunk_size: int
              ) -> TextChunks:
    """A line format read once, lazily; `reread` opens the input again (None for stdin or a FIFO)."""
    if fmt == "jsonl":
        return _jsonl(lines, reread, shown, text_field, skip_invalid, chunk_size)
    if fmt == "text":
        rows: Iterator[Row] = (row for number, raw, _ in lines() if (row := text_row(number, *decode_line(raw))))
        first = next(rows, None)
        if first is None:
            raise empty_input(shown)
        choose_fields([], True, shown=shown, text_field=text_field)
        return TextChunks(lambda: itertools.chain([first], rows), shown=shown, fmt=fmt, plain=True, field=None,
                          skip_invalid=skip_invalid, chunk_size=chunk_size)
    header, rows = csv_records(_csv_lines(lines()), shown, delimiter)
    first = next(rows, None)
    if first is None:
        raise empty_input(shown)
    field = choose_fields(header, False, shown=shown, text_field=text_field)
    return TextChunks(lambda: itertools.chain([first], rows), shown=shown, fmt=fmt, plain=False, field=field,
                      skip_invalid=skip_invalid, chunk_size=chunk_size)


def _csv_lines(lines: Iterator[Line]) -> Iterator[str]:
    """The lines as `parse_csv` hands them to the csv module: decoded with `surrogateescape` (a
    newline byte never ends a UTF-8 sequence, so decoding per line gives the whole-file decode) and
    split again at a lone carriage return, as `io.StringIO(text, newline="")` splits."""
    for _, raw, ended in lines:
        text = raw.decode("utf-8", errors="surrogateescape") + ("\n" if ended else "")
        if "\r" in (text[:-2] if ended else text[:-1]):  # a line ending in "\r\n" or "\r" needs no split
            yield from io.StringIO(text, newline="")
        else:
            yield text


def _from_rows(rows: list[Row], fields: list[str], plain: bool, shown: str, fmt: str, text_field: str | None,
               skip_invalid: bool, chunk_size: int) -> TextChunks:
    if not rows:
        raise empty_input(shown)
    field = choose_fields(fields, plain, shown=shown, text_field=text_field)
    return TextChunks(lambda: iter(rows), shown=shown, fmt=fmt, plain=plain, field=field,
                      skip_invalid=skip_invalid, chunk_size=chunk_size)


def _jsonl_rows(lines: Iterable[Line]) -> Iterator[Row]:
    for number, raw, _ in lines:
        row = jsonl_row(number, *decode_line(raw))
        if row is not None:
            yield row


def _jsonl(lines: Callable[[], Iterator[Line]], reread: Callable[[], Iterator[Line]] | None, shown: str,
           text_field: str | None, skip_invalid: bool, chunk_size: int) -> TextChunks:
    """JSONL parsed once, with the text field `load_corpus` would choose (see the module doc)."""
    rows = _jsonl_rows(lines())
    head = list(itertools.islice(rows, chunk_size))
    if not head:
        raise empty_input(shown)
    fields = _fields(head)
    ended = len(head) < chunk_size
    names = {text_field} if text_field is not None else set(TEXT_FIELD_CANDIDATES)
    if ended or (text_field or "text") in fields:  # every record seen, or the choice cannot change
        field = choose_fields(list(fields), False, shown=shown, text_field=text_field)
    elif reread is not None and _settles(present := {n for n in names if n in fields}
                                         | _candidates_after(reread(), head[-1].line, names, fields), text_field):
        field = choose_fields(list(fields) + sorted(present - set(fields)), False, shown=shown,
                              text_field=text_field)
    elif reread is not None:  # the choice fails or there are no fields: the exact field list, as load_corpus
        field = choose_fields(list(_fields(_jsonl_rows(reread()))), False, shown=shown, text_field=text_field)
    else:  # stdin: cannot read twice, so hold the rest
        head += list(rows)
        field = choose_fields(list(_fields(head)), False, shown=shown, text_field=text_field)
    return TextChunks(lambda: _release(head, rows), shown=shown, fmt="jsonl", plain=False, field=field,
                      skip_invalid=skip_invalid, chunk_size=chunk_size)


def _release(held: list[Row], rest: Iterator[Row]) -> Iterator[Row]:
    """The held rows, each dropped once handed on, then the rest."""
    held.reverse()
    while held:
        yield held.pop()
    yield from rest


def _fields(rows: Iterable[Row]) -> dict[str, None]:
    fields: dict[str, None] = {}
    for row in rows:
        if isinstance(row.value, dict):
            fields.update(dict.fromkeys(row.value))
    return fields


def _settles(present: set[str], text_field: str | None) -> bool:
    """Whether these candidate names, being all the whole input has, make `choose_fields` succeed."""
    if text_field is not None:
        return text_field in present
    return "text" in present or len(present) == 1


def _candidates_after(lines: Iterable[Line], after: int, names: set[str], known: dict[str, None]) -> set[str]:
    """Which of `names` are top-level fields of a record after line `after`, parsing only the lines
    that could hold one: those containing the name as a JSON string, or a `\\u00` escape (the only
    other spelling of an ASCII letter; for other names, any backslash)."""
    wanted = {name for name in names if name not in known}
    found: set[str] = set()
    needles = {name: json.dumps(name, ensure_ascii=False).encode("utf-8") for name in wanted}
    escape = b"\\u00" if all(c.isascii() and c.isalnum() or c in "_- " for n in wanted for c in n) else b"\\"
    for number, raw, _ in lines:
        if number <= after or not (escape in raw or any(needles[n] in raw for n in wanted - found)):
            continue
        row = jsonl_row(number, *decode_line(raw))
        if row is not None and isinstance(row.value, dict):
            found |= wanted & row.value.keys()
            if found == wanted or "text" in found:
                break
    return found


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
