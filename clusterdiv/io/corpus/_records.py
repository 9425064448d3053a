"""Data already in memory: strings, dicts, Examples, a pandas DataFrame or a `datasets.Dataset`,
validated exactly like a file's rows (same ids, same errors)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clusterdiv.core.errors import CorpusError
from clusterdiv.core.records import Example
from clusterdiv.io.corpus._build import ContentIds, build, json_type, label_value
from clusterdiv.io.corpus._load import load_corpus
from clusterdiv.io.corpus._types import LoadedCorpus, Parsed, Row


def load_records(
    records: Sequence[object],
    *,
    name: str = "(in-memory)",
    text_field: str | None = None,
    id_field: str | None = None,
    label_field: str | None = None,
    skip_invalid: bool = False,
) -> LoadedCorpus:
    """In-memory rows (strings, or dicts like JSONL records), validated exactly like a file's rows."""
    rows = [Row(i + 1, value) for i, value in enumerate(records)]
    plain = bool(rows) and all(isinstance(r.value, str) for r in rows)
    fields = [] if plain else list(dict.fromkeys(k for r in rows if isinstance(r.value, dict) for k in r.value))
    return build(Parsed(rows, fields, plain=plain, native=False), shown=name, fmt="json",
                  text_field=text_field, id_field=id_field, label_field=label_field, skip_invalid=skip_invalid)


def to_corpus(data: object, **options: object) -> LoadedCorpus | list[Example]:
    """Whatever a library call accepts as a dataset, as a LoadedCorpus (or the Examples given).

    A path (any format `load_corpus` reads), a LoadedCorpus, a list of Examples, a list of
    strings or of dicts (records with a text field), a pandas DataFrame, or a Hugging Face
    ``datasets.Dataset``. ``options`` are `load_corpus`'s (``text_field``, ``id_field``, ...).
    """
    if isinstance(data, LoadedCorpus):
        return data
    if isinstance(data, (str, Path)) and not (isinstance(data, str) and "\n" in data):
        return load_corpus(data, **options)  # type: ignore[arg-type]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) \
            and all(isinstance(x, Example) for x in data):  # (an empty list too: the caller says "empty")
        return list(data)  # type: ignore[arg-type]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and data \
            and all(isinstance(x, str) for x in data):
        return examples_from_texts(list(data))  # type: ignore[arg-type]
    record_options = {k: v for k, v in options.items() if k in ("text_field", "id_field", "label_field",
                                                                 "skip_invalid")}
    kind = type(data).__module__.split(".")[0]
    if kind == "pandas" and hasattr(data, "to_dict"):
        return load_records(data.to_dict(orient="records"), name="(pandas DataFrame)",  # type: ignore[attr-defined]
                            **record_options)  # type: ignore[arg-type]
    if kind == "datasets" and hasattr(data, "column_names"):
        if not hasattr(data, "to_list"):
            raise CorpusError("a DatasetDict holds several splits; pass one split, e.g. dataset['train']")
        return load_records(data.to_list(), name="(datasets.Dataset)", **record_options)  # type: ignore[attr-defined,arg-type]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return load_records(list(data), **record_options)  # type: ignore[arg-type]
    raise CorpusError("expected a path, a list of texts, dicts or Examples, a pandas DataFrame or a "
                      f"datasets.Dataset, got {type(data).__name__}")


def as_examples(data: object, *, load_options: dict[str, object] | None = None
                ) -> tuple[list[Example], LoadedCorpus | None]:
    """The examples of any accepted dataset (see :func:`to_corpus`) and the corpus they came from, if any."""
    loaded = to_corpus(data, **(load_options or {}))
    return (list(loaded.examples), loaded) if isinstance(loaded, LoadedCorpus) else (loaded, None)


def load_examples(data: object, **options: object) -> list[Example]:
    """The examples of any accepted dataset (see :func:`to_corpus`), with ids as `load_corpus` makes them.

    A path, a list of strings, dicts or Examples, a pandas DataFrame or a ``datasets.Dataset``;
    ``options`` are `load_corpus`'s (``text_field``, ``id_field``, ``label_field``, ``skip_invalid``).
    """
    examples, _ = as_examples(data, load_options=options)
    if not examples:
        raise CorpusError("the dataset is empty: nothing to measure")
    return examples


def examples_from_texts(
    texts: Sequence[str],
    *,
    ids: Sequence[str] | None = None,
    labels: Sequence[object] | None = None,
) -> list[Example]:
    """Build examples from in-memory strings with the same id scheme as `load_corpus`.

    This lets a notebook or test feed texts straight into the pipeline and still get ids that match
    what loading the same texts from a file would give. `source_line` is the 1-based position.
    """
    if ids is not None and len(ids) != len(texts):
        raise CorpusError(f"got {len(texts)} texts but {len(ids)} ids")
    if labels is not None and len(labels) != len(texts):
        raise CorpusError(f"got {len(texts)} texts but {len(labels)} labels")
    content_ids = ContentIds()
    seen: dict[str, int] = {}
    out: list[Example] = []
    for i, text in enumerate(texts):
        position = i + 1
        if not isinstance(text, str):
            raise CorpusError(f"text {position} is {json_type(text)}, expected a string")
        if not text.strip():
            raise CorpusError(f"text {position} is empty")
        label: str | None = None
        if labels is not None:
            label, reason = label_value(labels[i], "label")
            if reason is not None:
                raise CorpusError(f"text {position}: {reason}")
        if ids is None:
            out.append(content_ids.make(text, label=label, source_line=position, meta={}))
            continue
        ex_id = str(ids[i])
        if not ex_id.strip():
            raise CorpusError(f"id {position} is empty")
        if ex_id in seen:
            raise CorpusError(f"duplicate id {ex_id!r} at positions {seen[ex_id]} and {position}")
        seen[ex_id] = position
        out.append(Example(id=ex_id, text=text, label=label, source_line=position))
    return out
