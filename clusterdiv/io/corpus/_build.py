"""From raw rows to validated `Example`s: the text field chosen, ids and labels checked, bad rows
raised or skipped. One place for every format, so a row means the same whatever file it came from."""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
from decimal import Decimal

from clusterdiv.core.errors import CorpusError
from clusterdiv.core.records import Example
from clusterdiv.io.corpus._types import (
    TEXT_FIELD_CANDIDATES,
    CorpusFormat,
    LoadedCorpus,
    Parsed,
    Row,
    SkippedRow,
)

_MISSING = object()
_DROP = object()


class ContentIds:
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


def build(
    parsed: Parsed,
    *,
    shown: str,
    fmt: CorpusFormat,
    text_field: str | None,
    id_field: str | None,
    label_field: str | None,
    skip_invalid: bool,
) -> LoadedCorpus:
    if not parsed.rows:
        raise empty_input(shown)
    field = choose_fields(parsed.fields, parsed.plain, shown=shown, text_field=text_field,
                          id_field=id_field, label_field=label_field)
    # An implicit `id` stays in meta too, so whatever writes rows back (select, the explorer's
    # downloads) keeps the column without being told which field it was.
    not_meta = {name for name in (field, id_field, label_field) if name is not None}
    id_field, ids = _id_source(parsed, id_field, text_field=field)

    examples: list[Example] = []
    skipped: list[SkippedRow] = []
    content_ids = ContentIds()
    first_line_of_id: dict[str, int | None] = {}

    for row in parsed.rows:
        text, reason = row_text(row, parsed.plain, field)
        if reason is None:
            value = row.value
            if parsed.plain:
                assert text is not None
                examples.append(content_ids.make(text, source_line=row.line, meta={}))
                continue
            else:
                assert isinstance(value, dict)
                label: str | None = None
                if reason is None and label_field is not None:
                    label, reason = label_value(value.get(label_field), label_field)
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
        raise all_skipped(skipped, shown)
    return LoadedCorpus(
        path=shown,
        format=fmt,
        text_field=None if parsed.plain else field,
        examples=examples,
        skipped=skipped,
        content_hash=_content_hash(examples),
        ids=ids,
    )


DEFAULT_ID_FIELD = "id"
CONTENT_IDS = "made up (content hash)"


def _id_source(parsed: Parsed, id_field: str | None, *, text_field: str | None) -> tuple[str | None, str]:
    """The id field to read (None: content-hash ids) and how the report describes the ids.

    A field named `id` is the id without a flag, because that is what the user means by it and a
    report full of `t36c...` hashes cannot be joined back to their data. Unlike a named
    `--id-field` (strict: a missing or duplicate id is a bad row), the implicit one is taken only
    when every record has a usable, distinct value; otherwise the ids are made up and the note says
    why, so a file whose `id` column is not an id still loads as it did before.
    """
    if id_field is not None:
        return id_field, f"from the {id_field!r} field"
    if parsed.plain:
        return None, f"{CONTENT_IDS}: plain strings have no id field"
    if DEFAULT_ID_FIELD not in parsed.fields or text_field == DEFAULT_ID_FIELD:
        return None, f"{CONTENT_IDS}: no {DEFAULT_ID_FIELD!r} field"
    seen: set[str] = set()
    for row in parsed.rows:
        if row.error is not None or not isinstance(row.value, dict):
            continue
        value, reason = _id_value(row.value.get(DEFAULT_ID_FIELD, _MISSING), DEFAULT_ID_FIELD)
        if reason is None and value in seen:
            reason = f"duplicate id {value!r}"
        if reason is not None:
            where = f" (line {row.line})" if row.line is not None else ""
            return None, f"{CONTENT_IDS}: {reason}{where}"
        seen.add(value)  # type: ignore[arg-type]
    return DEFAULT_ID_FIELD, f"from the {DEFAULT_ID_FIELD!r} field"


def empty_input(shown: str) -> CorpusError:
    return CorpusError("no examples found (the input is empty)", path=shown)


def all_skipped(skipped: list[SkippedRow], shown: str) -> CorpusError:
    first = skipped[0]
    return CorpusError(
        f"no valid examples: all {len(skipped)} rows were skipped (first, line {first.line}: {first.reason})",
        path=shown,
    )


def choose_fields(fields: list[str], plain: bool, *, shown: str, text_field: str | None,
                  id_field: str | None = None, label_field: str | None = None) -> str | None:
    """The text field of a record input (None for plain strings), after checking the named fields exist.

    Needs the fields of the whole input, which is why a streamed JSONL file is scanned once first.
    """
    field: str | None = text_field
    if plain:
        given = [opt for opt, v in (("text", text_field), ("id", id_field), ("label", label_field)) if v]
        if given:
            raise CorpusError(
                f"--{'/--'.join(g + '-field' for g in given)} cannot be used: this input holds "
                "plain strings, not records",
                path=shown,
            )
    elif fields:
        field = _choose_text_field(fields, text_field, shown)
        for option, name in (("--id-field", id_field), ("--label-field", label_field)):
            if name is not None and name not in fields:
                raise CorpusError(
                    f"{option} {name!r} not found; available fields: {_field_list(fields)}",
                    path=shown,
                )
    return field


def row_text(row: Row, plain: bool, field: str | None) -> tuple[str | None, str | None]:
    """(text, None) for a row whose text is valid, else (None, reason it is skipped or refused)."""
    if row.error is not None:
        return None, row.error
    value = row.value
    if plain:
        if not isinstance(value, str):
            return None, f"expected a string, got {json_type(value)}"
        if not value.strip():
            return None, "text is empty"
        return value, None
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {json_type(value)}"
    if field is None:
        return None, "record has no fields"
    return _text_value(value, field)


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
        return None, f"text field {field!r} is {json_type(value)}, expected a string"
    if not value.strip():
        return None, f"text field {field!r} is empty"
    return value, None


def _chat_text(turns: list[object], field: str) -> tuple[str | None, str | None]:
    """Join the user turns of a chat record: the prompts are what synthetic-data diversity is about."""
    parts: list[str] = []
    for turn in turns:
        if not isinstance(turn, dict):
            return None, f"field {field!r} mixes chat turns with {json_type(turn)}"
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
            return None, f"a user turn in {field!r} has {json_type(content)} content, expected a string"
        if content.strip():
            parts.append(content)
    if not parts:
        return None, f"chat field {field!r} has no user turn with text"
    return "\n\n".join(parts), None


def _id_value(value: object, field: str) -> tuple[str | None, str | None]:
    if value is _MISSING or value is None:
        return None, f"missing id field {field!r}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None, f"id field {field!r} is {json_type(value)}, expected a string or integer"
    text = str(value)
    if not text.strip():
        return None, f"id field {field!r} is empty"
    return text, None


def label_value(value: object, field: str) -> tuple[str | None, str | None]:
    """Labels are compared as strings, so `1` from JSON and `"1"` from CSV mean the same label."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None, None
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, (str, int, float)):
        return str(value), None
    return None, f"label field {field!r} is {json_type(value)}, expected a scalar"


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


def json_type(value: object) -> str:
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


def _content_hash(examples: list[Example]) -> str:
    """Hash (id, text) in order, length-prefixed so no two different corpora can share a byte stream."""
    digest = hashlib.sha256()
    for example in examples:
        for part in (example.id, example.text):
            encoded = part.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "big"))
            digest.update(encoded)
    return digest.hexdigest()
