"""The columnar formats read through Arrow: Parquet files and saved Hugging Face datasets (rows, no lines)."""

from __future__ import annotations

import io
from pathlib import Path

from clusterdiv.core.errors import CorpusError
from clusterdiv.io.corpus._types import Parsed, Row, one_line


def parse_parquet(p: Path | io.BytesIO, shown: str) -> Parsed:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow is a declared dependency
        raise CorpusError("reading Parquet needs pyarrow (pip install pyarrow)", path=shown) from e
    rows: list[Row] = []
    try:
        parquet = pq.ParquetFile(p)
        fields = list(parquet.schema_arrow.names)
        number = 0
        for batch in parquet.iter_batches(batch_size=65536):
            for record in batch.to_pylist():
                number += 1
                rows.append(Row(number, record))
    except (pa.ArrowException, OSError) as e:
        raise CorpusError(f"cannot read Parquet file: {one_line(e)}", path=shown) from e
    return Parsed(rows, fields, plain=False, native=False)


def parse_hf_dataset(p: Path, shown: str) -> Parsed:
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a declared dependency
        raise CorpusError(
            "reading a saved Hugging Face dataset needs `datasets` (pip install datasets)", path=shown
        ) from e
    try:
        loaded = datasets.load_from_disk(str(p))
    except Exception as e:  # noqa: BLE001 - `datasets` raises many unrelated types for a bad folder
        raise CorpusError(f"cannot load the saved dataset: {one_line(e)}", path=shown) from e
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if len(splits) != 1:
            raise CorpusError(
                f"is a DatasetDict with splits {', '.join(splits)}; pass one split's folder, "
                f"e.g. {Path(shown) / splits[0]}",
                path=shown,
            )
        loaded = loaded[splits[0]]
    fields = list(loaded.column_names)
    rows: list[Row] = []
    number = 0
    for batch in loaded.with_format("arrow").iter(batch_size=65536):
        for record in batch.to_pylist():
            number += 1
            rows.append(Row(number, record))
    return Parsed(rows, fields, plain=False, native=False)
