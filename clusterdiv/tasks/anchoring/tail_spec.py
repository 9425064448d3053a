"""What the tail audit looks for: the tail spec (named entries with a description and seeds), read
from YAML/JSON or derived from labelled real data.

Its errors point at the entry and field that is wrong, because a spec is written by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clusterdiv.core.errors import InputError
from clusterdiv.tasks.anchoring._common import Loaded


class TailEntry(BaseModel):
    """One rare case the batch must contain: what it is, and optionally a few real examples of it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=2000)
    seeds: list[str] = Field(default_factory=list, description="a few real examples of the entry")
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0,
                                    description="cosine threshold for this entry (overrides the default)")

    @field_validator("name", "description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("seeds")
    @classmethod
    def _seeds_not_blank(cls, value: list[str]) -> list[str]:
        for i, seed in enumerate(value):
            if not seed.strip():
                raise ValueError(f"seed {i + 1} is blank")
        return value


class TailSpec(BaseModel):
    """A tail spec file: `entries:` (or a bare list of entries), each with name and description."""

    model_config = ConfigDict(extra="forbid")

    entries: list[TailEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> TailSpec:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.name in seen:
                raise ValueError(f"duplicate entry name {entry.name!r}")
            seen.add(entry.name)
        return self


def _spec_error(path: str, data: Any, exc: ValidationError) -> InputError:
    """One line naming the offending entry (number and name) and field."""
    # An unknown field is usually a typo of a missing one: name the typo, it is the fix.
    errors = sorted(exc.errors(), key=lambda err: err["type"] != "extra_forbidden")
    first = errors[0]
    loc = list(first["loc"])
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    where = "spec"
    if len(loc) >= 2 and loc[0] == "entries" and isinstance(loc[1], int):
        index = loc[1]
        name = None
        entries = data.get("entries") if isinstance(data, dict) else None
        if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
            name = entries[index].get("name")
        where = f"entry {index + 1}" + (f" ({name!r})" if isinstance(name, str) and name else "")
        loc = loc[2:]
    field = ".".join(str(p) for p in loc)
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(TailEntry.model_fields if where != "spec" else TailSpec.model_fields)
        return InputError(f"{path}: {where}: unknown field {field!r} (allowed: {allowed}){more}")
    if first["type"] == "missing":
        return InputError(f"{path}: {where}: field {field!r} is required{more}")
    message = first["msg"].removeprefix("Value error, ")
    if field:
        return InputError(f"{path}: {where}: field {field!r}: {message}{more}")
    return InputError(f"{path}: {where}: {message}{more}")


def parse_tail_spec(data: Any, *, source: str = "tail spec") -> TailSpec:
    """Validate an already-parsed spec (dict with `entries`, or a bare list of entries)."""
    if isinstance(data, TailSpec):
        return data
    if isinstance(data, list):
        data = {"entries": data}
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise InputError(f"{source}: expected a mapping with 'entries' or a list of entries, got {kind}")
    try:
        return TailSpec.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(source, data, exc) from exc


def load_tail_spec(path: str | Path) -> TailSpec:
    """Read a YAML or JSON tail spec (YAML parses JSON too); errors are one line naming entry and field."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"tail spec not found: {p}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read tail spec {p}: {exc}") from exc
    try:
        data = json.loads(raw) if p.suffix.lower() == ".json" else yaml.safe_load(raw)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        detail = str(exc).replace("\n", " ")
        raise InputError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {detail}") from exc
    return parse_tail_spec(data, source=str(p))


def derive_tail(reference: Loaded, *, tail_size: int, max_seeds: int, seed: int = 0
                ) -> tuple[TailSpec, dict[str, int], list[int]]:
    """The `tail_size` rarest labels of labelled real data as entries (ties: label order).

    Seeds are up to `max_seeds` real examples of each label (a seeded sample when there are more),
    the description is the label name. Also returns every label's count and the indices of the
    reference examples that are NOT in the tail: those become the contrast anchors.
    """
    import random

    labels = [e.label for e in reference.examples]
    if any(label is None for label in labels):
        raise InputError(f"{reference.name}: deriving a tail needs a label on every reference example "
                         "(pass --label-field)")
    counts = Counter(str(label) for label in labels)
    if len(counts) < 2:
        raise InputError(f"{reference.name}: deriving a tail needs at least 2 labels, found {len(counts)}")
    rarest = sorted(counts, key=lambda lab: (counts[lab], lab))[:tail_size]
    rng = random.Random(seed)
    entries = []
    for label in rarest:
        texts = [e.text for e in reference.examples if e.label == label]
        if len(texts) > max_seeds:
            texts = [texts[i] for i in sorted(rng.sample(range(len(texts)), max_seeds))]
        entries.append(TailEntry(name=label, description=label.replace("_", " "), seeds=texts))
    tail = set(rarest)
    contrast = [i for i, e in enumerate(reference.examples) if e.label not in tail]
    return TailSpec(entries=entries), dict(counts), contrast
