"""Write chosen examples back out as records, in the input's format (or the one the file name says).

A record is the example's original fields (kept in `Example.meta` on load) with the text, id and
label under the field names they were read from; plain-string inputs are written as plain strings.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from clusterdiv.core.errors import InputError
from clusterdiv.core.records import Example

_BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
              ".parquet": "parquet", ".pq": "parquet", ".txt": "text"}


def _gzipped(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def output_format(path: Path, input_format: str | None) -> str:
    """The format the file name says, else the input's (a saved HF dataset is written as JSONL).

    A `.gz` name is the format before it, compressed (`sel.jsonl.gz`), as the readers take it; Parquet
    compresses itself and is not read back from gzip, so a compressed name never means Parquet.
    """
    name = Path(path.name[:-3]) if _gzipped(path) else path
    fmt = _BY_SUFFIX.get(name.suffix.lower())
    if fmt == "parquet" and name is not path:
        raise InputError(f"{path}: Parquet is compressed already and is not read back from gzip; "
                         "name the file .parquet, or .jsonl.gz")
    if fmt is not None:
        return fmt
    if input_format in (None, "hf_dataset") or (input_format == "parquet" and name is not path):
        return "jsonl"
    return input_format


def open_output(path: Path, *, newline: str | None = None) -> IO[str]:
    """A text file to write, gzip-compressed when the name ends in `.gz`.

    The gzip header's time is 0, so the same records give the same bytes on every run.
    """
    if not _gzipped(path):
        return path.open("w", encoding="utf-8", newline=newline)
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8", newline=newline)


def default_output(source: Path, suffix: str) -> Path:
    """`batch.jsonl` -> `batch.<suffix>.jsonl` beside it (a saved dataset dir -> `<dir>.<suffix>.jsonl`)."""
    if source.is_dir() or not source.suffix:
        return source.with_name(f"{source.name}.{suffix}.jsonl")
    return source.with_name(f"{source.stem}.{suffix}{source.suffix}")


def record_of(example: Example, *, text_field: str | None, id_field: str | None = None,
              label_field: str | None = None) -> dict[str, Any] | str:
    if text_field is None:
        return example.text
    rec: dict[str, Any] = {}
    if id_field:
        rec[id_field] = example.id
    rec[text_field] = example.text
    if label_field and example.label is not None:
        rec[label_field] = example.label
    for k, v in example.meta.items():
        rec.setdefault(k, v)
    return rec


def write_examples(examples: Sequence[Example], path: str | Path, *, fmt: str, text_field: str | None,
                   id_field: str | None = None, label_field: str | None = None) -> Path:
    path = Path(path)
    records = [record_of(e, text_field=text_field, id_field=id_field, label_field=label_field) for e in examples]
    plain = text_field is None
    if fmt == "text" or (plain and fmt in ("csv", "tsv", "parquet")):
        if not plain and fmt == "text":
            raise InputError("records with several fields cannot be written as plain text; use .jsonl")
        if fmt == "text":
            with open_output(path) as out:
                out.write("".join(str(r).replace("\n", " ") + "\n" for r in records))
            return path
        records = [{"text": r} for r in records]
        text_field = "text"
    if fmt == "jsonl":
        with open_output(path) as out:
            for r in records:
                out.write(json.dumps(r, ensure_ascii=False) + "\n")
    elif fmt == "json":
        with open_output(path) as out:
            out.write(json.dumps(records, ensure_ascii=False, indent=1) + "\n")
    elif fmt in ("csv", "tsv"):
        fields: list[str] = []
        for r in records:
            assert isinstance(r, dict)
            fields.extend(k for k in r if k not in fields)
        with open_output(path, newline="") as out:
            writer = csv.DictWriter(out, fieldnames=fields, delimiter="\t" if fmt == "tsv" else ",")
            writer.writeheader()
            for r in records:
                assert isinstance(r, dict)
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                                 for k, v in r.items()})
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(list(records)), path)
    else:
        raise InputError(f"cannot write format {fmt!r}")
    return path
