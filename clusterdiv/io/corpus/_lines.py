"""The line formats: JSONL and plain text, one record per physical line."""

from __future__ import annotations

import json
from collections.abc import Iterator

from clusterdiv.io.corpus._types import Parsed, Row


def _decoded_lines(data: bytes) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield (line number, text, error): decoding per line lets one bad byte cost one line."""
    for number, raw in enumerate(data.split(b"\n"), 1):
        yield number, *decode_line(raw)


def decode_line(raw: bytes) -> tuple[str | None, str | None]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"


def jsonl_row(number: int, line: str | None, error: str | None) -> Row | None:
    """One JSONL line as a row (None for a blank line); shared by the whole-file and the streamed reader."""
    if line is None:
        return Row(number, error=error)
    if not line.strip():
        return None
    try:
        return Row(number, json.loads(line))
    except json.JSONDecodeError as e:
        return Row(number, error=f"invalid JSON: {e.msg} at column {e.colno}")
    except RecursionError:
        return Row(number, error="invalid JSON: nested too deeply")


def parse_jsonl(data: bytes) -> Parsed:
    rows: list[Row] = []
    fields: dict[str, None] = {}
    for number, line, error in _decoded_lines(data):
        row = jsonl_row(number, line, error)
        if row is None:
            continue
        if isinstance(row.value, dict):
            fields.update(dict.fromkeys(row.value))
        rows.append(row)
    return Parsed(rows, list(fields), plain=False)


def text_row(number: int, line: str | None, error: str | None) -> Row | None:
    """One plain-text line as a row (None for a blank line); shared like `jsonl_row`."""
    if line is None:
        return Row(number, error=error)
    if line.endswith("\r"):
        line = line[:-1]
    return Row(number, line) if line.strip() else None


def parse_text(data: bytes) -> Parsed:
    rows = [row for number, line, error in _decoded_lines(data) if (row := text_row(number, line, error))]
    return Parsed(rows, [], plain=True)
