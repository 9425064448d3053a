"""What every reader produces and the loader returns: the format names, raw rows, the loaded corpus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, Field

from clusterdiv.core.records import Example

CorpusFormat = Literal["jsonl", "json", "csv", "parquet", "text", "hf_dataset"]
FORMATS: tuple[str, ...] = get_args(CorpusFormat)
#: Fields tried, in priority order, when no text field is named. Kept short on purpose: guessing
#: between e.g. `question` and `answer` would silently measure the wrong column.
TEXT_FIELD_CANDIDATES: tuple[str, ...] = ("text", "prompt", "instruction", "input")


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
    ids: str = Field(default="", description="where the ids came from: a field, or made up and why")


@dataclass(slots=True)
class Row:
    """One raw row before validation; a parse failure is carried, not raised, so it can be skipped."""

    line: int | None
    value: object = None
    error: str | None = None


@dataclass
class Parsed:
    rows: list[Row]
    fields: list[str]  # ordered union of record keys, or the column names
    plain: bool  # rows are bare strings (plain text, JSON array of strings)
    native: bool = True  # values came from JSON or CSV text, so they are JSON-safe already


def one_line(error: BaseException) -> str:
    """The CLI prints errors on one line; library messages (Arrow's above all) may span several."""
    return " ".join(str(error).split()) or type(error).__name__
