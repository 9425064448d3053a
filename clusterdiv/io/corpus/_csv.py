"""CSV and TSV with a header row; a quoted field may span lines."""

from __future__ import annotations

import csv
import io
import re
import sys

from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus._types import Parsed, Row, one_line

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def parse_csv(data: bytes, shown: str, delimiter: str) -> Parsed:
    # Decode leniently and check each record afterwards, because a quoted field may span lines and
    # a per-line decode would break records apart.
    text = data.decode("utf-8", errors="surrogateescape")
    old_limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # the default 128 KiB cap rejects long texts
    rows: list[Row] = []
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
                rows.append(Row(start, error=f"invalid UTF-8 ({bad_byte})"))
            elif len(record) != len(header):
                rows.append(
                    Row(start, error=f"expected {len(header)} fields as in the header, got {len(record)}")
                )
            else:
                rows.append(Row(start, dict(zip(header, record, strict=True))))
    except csv.Error as e:
        raise CorpusError(f"malformed CSV: {one_line(e)}", path=shown, line=reader.line_num) from e
    finally:
        csv.field_size_limit(old_limit)
    return Parsed(rows, header or [], plain=False)


def _escaped_byte(record: list[str]) -> str | None:
    for value in record:
        match = _ESCAPED_BYTE.search(value)
        if match:
            return f"byte 0x{ord(match.group()) - 0xDC00:02x}"
    return None
