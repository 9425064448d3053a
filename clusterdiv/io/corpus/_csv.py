"""CSV and TSV with a header row; a quoted field may span lines.

`csv_records` reads from any iterable of lines (with their line endings), so the whole-file parser
and the streamed reader (`_stream.py`) share one header check, one row check and one error text.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterable, Iterator

from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus._types import Parsed, Row, one_line

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)  # the default 128 KiB cap rejects long texts


def parse_csv(data: bytes, shown: str, delimiter: str) -> Parsed:
    # Decode leniently and check each record afterwards, because a quoted field may span lines and
    # a per-line decode would break records apart.
    text = data.decode("utf-8", errors="surrogateescape")
    header, rows = csv_records(io.StringIO(text, newline=""), shown, delimiter)
    return Parsed(list(rows), header, plain=False)


def csv_records(lines: Iterable[str], shown: str, delimiter: str) -> tuple[list[str], Iterator[Row]]:
    """The header (read and checked now; [] for an input of blank lines) and the data rows, read lazily.

    `lines` are decoded with `surrogateescape` and split as `io.StringIO(text, newline="")` splits
    them; a row with an escaped (invalid) byte or the wrong number of fields is a `Row` carrying
    the error, a malformed file raises `CorpusError` at the record where the csv module stops.
    """
    reader = csv.reader(lines, delimiter=delimiter)
    position = [0]  # the last physical line of the previous record
    header: list[str] = []
    for start, record in _records(reader, position, shown):
        bad_byte = _escaped_byte(record)
        if bad_byte:
            raise CorpusError(f"invalid UTF-8 in the header ({bad_byte})", path=shown, line=start)
        duplicates = sorted({name for name in record if record.count(name) > 1})
        if duplicates:
            raise CorpusError(f"duplicate column name(s) in the header: {', '.join(duplicates)}",
                              path=shown, line=start)
        header = record
        break
    return header, _rows(reader, position, header, shown)


def _rows(reader: Iterator[list[str]], position: list[int], header: list[str], shown: str) -> Iterator[Row]:
    for start, record in _records(reader, position, shown):
        bad_byte = _escaped_byte(record)
        if bad_byte:
            yield Row(start, error=f"invalid UTF-8 ({bad_byte})")
        elif len(record) != len(header):
            yield Row(start, error=f"expected {len(header)} fields as in the header, got {len(record)}")
        else:
            yield Row(start, dict(zip(header, record, strict=True)))


def _records(reader, position: list[int], shown: str) -> Iterator[tuple[int, list[str]]]:  # noqa: ANN001
    """(first line, fields) of each non-blank record.

    The csv module's field-size limit is process-wide, so it is raised only around each read and
    restored before the record is handed on: a paused stream leaves it as it found it.
    """
    while True:
        old_limit = csv.field_size_limit(_FIELD_LIMIT)
        try:
            record = next(reader, None)
        except csv.Error as e:
            raise CorpusError(f"malformed CSV: {one_line(e)}", path=shown, line=reader.line_num) from e
        finally:
            csv.field_size_limit(old_limit)
        if record is None:
            return
        start = position[0] + 1
        position[0] = reader.line_num
        if record:  # not a blank line
            yield start, record


def _escaped_byte(record: list[str]) -> str | None:
    for value in record:
        match = _ESCAPED_BYTE.search(value)
        if match:
            return f"byte 0x{ord(match.group()) - 0xDC00:02x}"
    return None
