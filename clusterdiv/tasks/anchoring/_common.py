"""What the four anchoring commands share: loading inputs the way `score` does, and cosine search.

All vectors come from `embed_texts`, so they are unit-norm and a dot product is a cosine. Nearest
neighbour search is exact and chunked over the query rows, so memory stays bounded on large sets
without approximate indexes whose misses would be hard to explain in an audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clusterdiv.core.errors import InputError
from clusterdiv.core.records import Example
from clusterdiv.reports.report import SkippedInput

CHUNK_ROWS = 512  # query rows per block: 512 x 100k keys x 4 bytes = 200 MB at most


class Loaded:
    """Examples plus where they came from (path, content hash, skipped rows), for the report header."""

    def __init__(self, examples: list[Example], corpus: Any, role: str):
        self.examples = examples
        self.corpus = corpus
        self.role = role

    @property
    def source(self) -> str | None:
        return self.corpus.path if self.corpus is not None else None

    @property
    def content_hash(self) -> str | None:
        return self.corpus.content_hash if self.corpus is not None else None

    @property
    def skipped(self) -> SkippedInput:
        rows = [s.model_dump() for s in self.corpus.skipped] if self.corpus is not None else []
        return SkippedInput(count=len(rows), rows=rows)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def name(self) -> str:
        return self.source or f"({self.role}: in-memory)"


def load_examples(data: Any, *, role: str, load_options: dict[str, Any] | None = None) -> Loaded:
    """Accept what `score()` accepts (path, texts, Examples, LoadedCorpus); refuse an empty set."""
    from clusterdiv.io.corpus import as_examples

    if data is None:
        raise InputError(f"no {role} given")
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and len(data) == 0:
        raise InputError(f"the {role} is empty: nothing to measure")
    examples, corpus = as_examples(data, load_options=load_options or {})
    if not examples:
        raise InputError(f"the {role} is empty: nothing to measure")
    return Loaded(examples, corpus, role)


def get_embedder(model: Any) -> Any:
    """An `Embedder` as given (so a notebook or test reuses a loaded model), or one built from a name."""
    from clusterdiv.modes.embed import Embedder

    return model if isinstance(model, Embedder) else Embedder(model)


def nearest(queries: np.ndarray, keys: np.ndarray, *, exclude_self: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Highest cosine and its index in `keys` for every query row (exact, chunked).

    `exclude_self` is for a set against itself: row i never matches key i.
    """
    n = queries.shape[0]
    best = np.full(n, -np.inf, dtype=np.float32)
    arg = np.full(n, -1, dtype=np.int64)
    if keys.shape[0] == 0 or n == 0:
        return best, arg
    for start in range(0, n, CHUNK_ROWS):
        block = queries[start:start + CHUNK_ROWS] @ keys.T
        if exclude_self:
            rows = np.arange(block.shape[0])
            cols = rows + start
            valid = cols < keys.shape[0]
            block[rows[valid], cols[valid]] = -np.inf
        arg[start:start + block.shape[0]] = block.argmax(axis=1)
        best[start:start + block.shape[0]] = block.max(axis=1)
    return best, arg
