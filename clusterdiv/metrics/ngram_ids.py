"""Exact integer ids for n-grams, and the per-order statistics the lexical metrics keep per distinct n-gram.

Why integer ids: every n-gram metric needs the same thing, "which n-gram is at this position", and
hashing tuples of strings in Python is what makes the textbook loops slow. Tokens are mapped to
integers once and each order's n-grams get dense integer ids from the exact key (id of the
(n-1)-gram, next token), so ids are collision-free and everything after is array arithmetic
shared by distinct-n, self-BLEU and the jackknife. `LexicalStream` (lexical_stream.py) owns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class NgramTable:
    """Occurrences of one n-gram order: for each occurrence, its text and its dense n-gram id."""

    text: np.ndarray  # int64, text index of each occurrence, non-decreasing
    gram: np.ndarray  # int64, dense id in [0, n_unique)
    n_unique: int


@dataclass(frozen=True)
class TextGramCounts:
    """One row per distinct (n-gram, text) pair of a chunk, sorted by n-gram then text, with its count."""

    gram: np.ndarray
    text: np.ndarray  # index of the text within its chunk
    count: np.ndarray
    group_starts: np.ndarray  # first row of each n-gram
KEY_SHIFT = 32
"""An order-n key is (id of the (n-1)-gram << 32) | next token: exact in int64 while token ids stay below
2**32 and (n-1)-gram ids below 2**31, checked as ids are handed out."""


MAX_ID = 2**31 - 1


class OrderIds:
    """Stable dense ids for the n-grams of one order (n >= 2) seen so far, exact and collision-free.

    Why a sorted key array and not a hash of the n-gram: the key (id of the (n-1)-gram, next token)
    is already an exact integer, so a sorted array searched with ``np.searchsorted`` finds it
    without collisions, and new keys are merged in once per chunk. Ids are handed out in order of
    first appearance, so they stay valid as later chunks add n-grams. Memory is 12 bytes per
    distinct n-gram: it grows with the vocabulary of n-grams, not with the number of texts.
    """

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.int64)  # sorted
        self.ids = np.empty(0, dtype=np.int32)  # id of keys[i]

    @property
    def n_unique(self) -> int:
        return int(self.keys.shape[0])

    def ids_of(self, keys: np.ndarray) -> np.ndarray:
        """Ids of ``keys`` (int64), assigning the next ids to keys never seen before."""
        uniq, inverse = np.unique(keys, return_inverse=True)
        pos = np.searchsorted(self.keys, uniq)
        found = pos < self.keys.shape[0]
        found[found] = self.keys[pos[found]] == uniq[found]
        ids = np.empty(uniq.shape[0], dtype=np.int64)
        ids[found] = self.ids[pos[found]]
        new = np.flatnonzero(~found)
        if new.size:
            if self.n_unique + new.size > MAX_ID:
                raise ValueError(f"more than {MAX_ID} distinct n-grams of one order")
            ids[new] = np.arange(self.n_unique, self.n_unique + new.size)
            self.keys = np.insert(self.keys, pos[new], uniq[new])
            self.ids = np.insert(self.ids, pos[new], ids[new].astype(np.int32))
        return ids[inverse.reshape(-1)]


class OrderStats:
    """Per n-gram of one order, over all texts added so far: the largest and second-largest count in a
    single text (what self-BLEU clips by) and in how many texts it occurs, capped at 2 (what the
    leave-one-out jackknife needs). Nine bytes per distinct n-gram."""

    def __init__(self) -> None:
        self.top1 = np.zeros(0, dtype=np.int32)
        self.top2 = np.zeros(0, dtype=np.int32)
        self.docs = np.zeros(0, dtype=np.int8)
        self.total = 0  # occurrences

    def _grow(self, size: int) -> None:
        if size > self.top1.shape[0]:
            cap = max(size, 2 * self.top1.shape[0], 1024)
            for name in ("top1", "top2", "docs"):
                old = getattr(self, name)
                arr = np.zeros(cap, dtype=old.dtype)
                arr[: old.shape[0]] = old
                setattr(self, name, arr)

    def update(self, pairs: TextGramCounts, n_occurrences: int, n_unique: int) -> None:
        """Merge one chunk: the top two of {global top1, top2, chunk top1, top2} per n-gram."""
        self.total += n_occurrences
        self._grow(n_unique)
        if not pairs.count.size:
            return
        grams = pairs.gram[pairs.group_starts]
        c1, c2 = top_two(pairs)
        docs = np.diff(np.r_[pairs.group_starts, pairs.count.shape[0]])
        t1, t2 = self.top1[grams], self.top2[grams]
        self.top1[grams] = np.maximum(t1, c1)
        self.top2[grams] = np.maximum(np.minimum(t1, c1), np.maximum(t2, c2))
        self.docs[grams] = np.minimum(2, self.docs[grams] + np.minimum(docs, 2))


def top_two(pairs: TextGramCounts) -> tuple[np.ndarray, np.ndarray]:
    """Per n-gram group: the largest count and the second largest (equal to it on a tie, 0 if alone)."""
    top1 = np.maximum.reduceat(pairs.count, pairs.group_starts)
    group = np.repeat(np.arange(pairs.group_starts.shape[0]), np.diff(np.r_[pairs.group_starts,
                                                                              pairs.count.shape[0]]))
    max_rows = np.flatnonzero(pairs.count == top1[group])
    first_max = max_rows[np.r_[True, group[max_rows[1:]] != group[max_rows[:-1]]]]
    without_first = pairs.count.copy()
    without_first[first_max] = 0
    return top1, np.maximum.reduceat(without_first, pairs.group_starts)


@dataclass
class TokenChunk:
    """Token ids of consecutive texts; n-gram codes are derived on demand (and kept if ``cache``)."""

    tokens: np.ndarray  # int64
    lengths: np.ndarray  # int64
    offset: int  # index of the first text in the whole corpus
    cache: bool = False
    _codes: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _pairs: dict[int, TextGramCounts] = field(default_factory=dict, repr=False)
    _positions: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def n_texts(self) -> int:
        return int(self.lengths.shape[0])

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(text index within the chunk, tokens left until the end of its text) per token position."""
        if self._positions is not None:
            return self._positions
        text_of = np.repeat(np.arange(self.n_texts, dtype=np.int64), self.lengths)
        remaining = np.cumsum(self.lengths)[text_of] - np.arange(self.tokens.shape[0], dtype=np.int64)
        self._positions = (text_of, remaining)
        return self._positions
