"""The line formats: JSONL and plain text, one record per physical line."""

from __future__ import annotations

import json
from collections.abc import Iterator

from clusterdiv.io.corpus._types import Parsed, Row


def _decoded_lines(data: bytes) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield (line number, text, error): decoding per line lets one bad byte cost one line."""
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            yield number, raw.decode("utf-8"), None
        except UnicodeDecodeError as e:
            yield number, None, f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"


def parse_jsonl(data: bytes) -> Parsed:
    rows: list[Row] = []
    fields: dict[str, None] = {}
    loads = json.loads
    for number, line, error in _decoded_lines(data):
        if line is None:
            rows.append(Row(number, error=error))
            continue
        if not line.strip():
            continue
        try:
            value = loads(line)
        except json.JSONDecodeError as e:
            rows.append(Row(number, error=f"invalid JSON: {e.msg} at column {e.colno}"))
            continue
        except RecursionError:
            rows.append(Row(number, error="invalid JSON: nested too deeply"))
            continue
        if isinstance(value, dict):
            fields.update(dict.fromkeys(value))
        rows.append(Row(number, value))
    return Parsed(rows, list(fields), plain=False)


def parse_text(data: bytes) -> Parsed:
    rows: list[Row] = []
    for number, line, error in _decoded_lines(data):
        if line is None:
            rows.append(Row(number, error=error))
            continue
        if line.endswith("\r"):
            line = line[:-1]
        if line.strip():
            rows.append(Row(number, line))
    return Parsed(rows, [], plain=True)
