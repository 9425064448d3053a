"""Loading from a path, standard input or uploaded bytes: pick the format, read, parse, build."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus._arrow import parse_hf_dataset, parse_parquet
from clusterdiv.io.corpus._build import build
from clusterdiv.io.corpus._csv import parse_csv
from clusterdiv.io.corpus._json import parse_json
from clusterdiv.io.corpus._lines import parse_jsonl, parse_text
from clusterdiv.io.corpus._read import (
    EXTENSIONS,
    FORMAT_ALIASES,
    STDIN,
    check_record_sizes,
    normalize_bytes,
    read_bytes,
    read_stream,
    resolve_format,
    resolve_stdin,
)
from clusterdiv.io.corpus._types import FORMATS, LoadedCorpus, Parsed


def load_corpus(
    path: str | Path,
    *,
    text_field: str | None = None,
    id_field: str | None = None,
    label_field: str | None = None,
    skip_invalid: bool = False,
    format: str | None = None,
) -> LoadedCorpus:
    """Read a corpus file or saved Hugging Face dataset into validated examples.

    Raises `CorpusError` (exit code 2) naming the file and line for the first bad row, unless
    `skip_invalid` is set, in which case bad rows are listed in `skipped` instead. A load that ends
    with no examples is always an error: a score over nothing would be meaningless.
    """
    p = Path(path)
    shown = str(path)
    if shown == STDIN:  # `-`: the corpus arrives on standard input
        shown, fmt, delimiter = resolve_stdin(format)
        data = read_stream(sys.stdin.buffer, shown, fmt)
        if fmt == "parquet":
            parsed = parse_parquet(io.BytesIO(data), shown)
        else:
            parsed = parse_text_format(fmt, data, shown, delimiter)
        return build(parsed, shown=shown, fmt=fmt,  # type: ignore[arg-type]
                      text_field=text_field, id_field=id_field, label_field=label_field,
                      skip_invalid=skip_invalid)
    fmt, delimiter = resolve_format(p, shown, format)
    if fmt == "parquet":
        parsed = parse_parquet(p if p.is_file() else io.BytesIO(read_bytes(p, shown, fmt)), shown)
    elif fmt == "hf_dataset":
        parsed = parse_hf_dataset(p, shown)
    else:
        parsed = parse_text_format(fmt, read_bytes(p, shown, fmt), shown, delimiter)
    return build(
        parsed,
        shown=shown,
        fmt=fmt,  # type: ignore[arg-type]
        text_field=text_field,
        id_field=id_field,
        label_field=label_field,
        skip_invalid=skip_invalid,
    )


def load_corpus_bytes(
    data: bytes,
    *,
    filename: str,
    text_field: str | None = None,
    id_field: str | None = None,
    label_field: str | None = None,
    skip_invalid: bool = False,
    format: str | None = None,
    max_bytes: int | None = None,
    limit_hint: str | None = None,
) -> LoadedCorpus:
    """Parse an uploaded corpus held in memory; `filename` only names it and picks the format.

    The HTTP service uses this so that nothing a request says is ever opened as a path: the
    bytes are the whole input. Errors name `filename` and the line, like `load_corpus`.
    `max_bytes` caps the data after gzip decompression (streamed, so a gzip bomb stops at the
    cap): `CorpusTooLarge` above it, whose message says `limit_hint` sets the cap (the service's option).
    """
    shown = Path(filename).name or "upload"
    name = shown.lower()[:-3] if shown.lower().endswith(".gz") else shown.lower()
    ext = Path(name).suffix
    delimiter = "\t" if ext == ".tsv" or (format or "").lower() == "tsv" else ","
    if format is not None:
        fmt = FORMAT_ALIASES.get(format.lower(), format.lower())
        if fmt not in FORMATS:
            raise CorpusError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}", path=shown)
    elif ext in EXTENSIONS:
        fmt = EXTENSIONS[ext]
    else:
        raise CorpusError(
            f"cannot tell the format from the name {shown!r} (known: {', '.join(sorted(EXTENSIONS))}); "
            "give the format explicitly", path=shown)
    if fmt == "hf_dataset":
        raise CorpusError("a saved Hugging Face dataset is a directory and cannot be uploaded as one file",
                          path=shown)
    data = normalize_bytes(data, shown, max_bytes=max_bytes, limit_hint=limit_hint)
    if fmt == "parquet":
        parsed = parse_parquet(io.BytesIO(data), shown)
    else:
        check_record_sizes(data, fmt, shown)
        parsed = parse_text_format(fmt, data, shown, delimiter)
    return build(parsed, shown=shown, fmt=fmt,  # type: ignore[arg-type]
                  text_field=text_field, id_field=id_field, label_field=label_field,
                  skip_invalid=skip_invalid)


def parse_text_format(fmt: str, data: bytes, shown: str, delimiter: str) -> Parsed:
    """The byte-oriented formats, shared by files and uploads."""
    if fmt == "jsonl":
        return parse_jsonl(data)
    if fmt == "json":
        return parse_json(data, shown)
    if fmt == "csv":
        return parse_csv(data, shown, delimiter)
    return parse_text(data)
