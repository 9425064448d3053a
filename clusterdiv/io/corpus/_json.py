"""A JSON array of records (or `{"key": [...]}`), scanned item by item so each record keeps its line."""

from __future__ import annotations

import json
import re

from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus._types import Parsed, Row

_WHITESPACE = re.compile(r"[ \t\n\r]*")


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


def parse_json(data: bytes, shown: str) -> Parsed:
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
        return Parsed([], [], plain=False)
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
    items: list[Row] = []
    i = ws(i + 1)
    if i < n and text[i] == "]":
        i += 1
    else:
        while True:
            start = i
            value, i = decode_at(i)
            items.append(Row(lines.line_at(start), value))
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
    return Parsed(items, list(fields), plain=plain)
