"""Loading a corpus into `Example` records: the one package that knows about input formats.

Every later stage works on `list[Example]`. Loading is strict by default: a bad row stops the load
with the file and line named, because a diversity score computed over silently dropped rows
describes a different dataset from the one the user thinks they measured. `skip_invalid=True`
turns those failures into `skipped` entries the report can show.

Line numbers are 1-based physical lines for text formats (JSONL, JSON, CSV, plain text) and 1-based
row numbers for Parquet and Hugging Face datasets, which have no lines.

Layout (the modules are private; import from `clusterdiv.io.corpus`):

- `_load.py`: `load_corpus` (a path or `-` for stdin) and `load_corpus_bytes` (an upload), the one
  dispatch from a format name to its parser;
- `_read.py`: which format a path is, reading within the size limits, gzip;
- one parser module per family of formats: `_lines.py` (JSONL, plain text), `_json.py`, `_csv.py`
  (CSV, TSV), `_arrow.py` (Parquet, saved Hugging Face datasets);
- `_build.py`: parsed rows -> validated `Example`s (text field, ids, labels, skipped rows);
- `_records.py`: data already in memory (strings, dicts, DataFrame, `datasets.Dataset`);
- `_types.py`: `LoadedCorpus`, `SkippedRow`, the format names;
- `_stream.py`: `stream_texts`, the valid texts in chunks (JSONL, CSV/TSV and plain text line by
  line, gzip or not, from a file or stdin; Parquet by batch) for metrics that need no `Example`s and
  should not hold the corpus; `_source.py`: the lines it reads, within the same limits as `_read.py`.

A new format is a parser module returning `Parsed` rows plus one line in `_load.py`'s dispatch.
"""

from __future__ import annotations

from clusterdiv.core.errors import CorpusError, CorpusTooLarge  # noqa: F401  (importable from here before the split)
from clusterdiv.core.records import Example  # noqa: F401  (likewise)
from clusterdiv.io.corpus._load import load_corpus, load_corpus_bytes
from clusterdiv.io.corpus._read import MAX_INPUT_ENV, MAX_RECORD_ENV, STDIN, max_input_bytes, max_record_bytes
from clusterdiv.io.corpus._records import (
    as_examples,
    examples_from_texts,
    load_examples,
    load_records,
    to_corpus,
)
from clusterdiv.io.corpus._stream import TextChunks, stream_texts
from clusterdiv.io.corpus._types import FORMATS, TEXT_FIELD_CANDIDATES, CorpusFormat, LoadedCorpus, SkippedRow

__all__ = [
    "FORMATS",
    "MAX_INPUT_ENV",
    "MAX_RECORD_ENV",
    "STDIN",
    "TEXT_FIELD_CANDIDATES",
    "CorpusFormat",
    "LoadedCorpus",
    "SkippedRow",
    "TextChunks",
    "as_examples",
    "examples_from_texts",
    "load_corpus",
    "load_corpus_bytes",
    "load_examples",
    "load_records",
    "max_input_bytes",
    "max_record_bytes",
    "stream_texts",
    "to_corpus",
]
