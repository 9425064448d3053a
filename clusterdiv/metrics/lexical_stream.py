"""`LexicalStream`: the lexical metrics over a corpus taken in chunks.

Why a stream: a corpus of a million texts should not need its every n-gram occurrence in memory at
once. The stream takes the corpus in chunks and keeps, per order, only what the metrics need per
*distinct* n-gram (ngram_ids.py), so memory follows the n-gram vocabulary rather than the number
of texts; token ids spill to a temporary file for the second pass self-BLEU needs. The in-memory
functions of lexical.py are the stream fed a single chunk: one implementation of each metric.
"""

from __future__ import annotations

import math
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from clusterdiv.metrics.ngram_ids import (
    KEY_SHIFT,
    MAX_ID,
    NgramTable,
    OrderIds,
    OrderStats,
    TextGramCounts,
    TokenChunk,
)
from clusterdiv.metrics.tokenize import tokenize_all

GZIP_LEVEL = 9
"""gzip level for :func:`compression_ratio`: 9, the ``gzip`` command's and Python's default, so the
figure can be reproduced with ``gzip -9``."""


SMOOTHING_EPSILON = 0.1
"""nltk's ``SmoothingFunction().method1`` epsilon: the numerator given to an order with no match."""


class LexicalStream:
    """Everything the lexical metrics need, accumulated chunk by chunk in memory that does not grow
    with the number of texts (only with their vocabulary of n-grams).

    This is the one implementation of distinct-n, its leave-one-out values, self-BLEU and the
    compression ratio: the in-memory functions below feed it their whole input as one chunk. What
    it holds: the token vocabulary, per n-gram order the distinct n-grams with the counts of
    :class:`OrderStats`, each text's length (4 bytes a text), a running zlib stream, and the
    token ids of every text, which are written to a temporary file (``spill=True``) so that the
    second pass self-BLEU and the jackknife need can replay them without re-reading or
    re-tokenising the input. Values are exactly those of a single pass over the whole corpus.

    ``orders`` n-gram orders are counted as chunks arrive; a higher order asked for later costs
    one replay of the stored chunks. ``keep_texts(raw_bytes, n_texts)`` says whether the raw texts
    are still small enough to keep (the compression-ratio interval re-gzips subsets of them);
    once it says no they are dropped for good.
    """

    def __init__(self, *, orders: int = 0, compress: bool = True, spill: bool = True,
                 keep_texts: Callable[[int, int], bool] | None = None) -> None:
        self._vocab: dict[str, int] = {}
        self._ids: dict[int, OrderIds] = {}
        self._stats: dict[int, OrderStats] = {}
        self._eager = orders
        self._lengths: list[np.ndarray] = []
        self._chunks: list[TokenChunk] = []  # kept chunks (spill=False) or empty
        self._spill = tempfile.TemporaryFile(prefix="clusterdiv-tokens-") if spill else None
        self._spilled: list[tuple[int, int, int]] = []  # (offset, n_texts, n_tokens) per spilled chunk
        self._n_texts = 0
        self._gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if compress else None
        self._gzip_size = 0
        self._gzip_final: int | None = None
        self.raw_bytes = 0
        self._raw_texts = 0
        self._keep = keep_texts
        self.kept_texts: list[str] | None = [] if keep_texts is not None else None
        self._cached_lengths: np.ndarray | None = None

    # --- input ------------------------------------------------------------------------------------

    def add(self, texts: Sequence[str]) -> LexicalStream:
        """Add a chunk of raw texts: tokenised with :func:`tokenize_all`, joined with newlines for gzip."""
        self.add_raw(texts)
        return self.add_tokens(tokenize_all(texts))

    def add_raw(self, texts: Sequence[str]) -> LexicalStream:
        """The raw-text side of :meth:`add` alone: the gzip stream and the kept texts."""
        if not texts:
            return self
        if self._gzip is not None:
            if self._gzip_final is not None:
                raise ValueError("texts added after the compression ratio was read")
            data = (("\n" if self._raw_texts else "") + "\n".join(texts)).encode("utf-8")
            self.raw_bytes += len(data)
            self._gzip_size += len(self._gzip.compress(data))
        self._raw_texts += len(texts)
        if self.kept_texts is not None:
            assert self._keep is not None
            if self._keep(self.raw_bytes, self._raw_texts):
                self.kept_texts.extend(texts)
            else:
                self.kept_texts = None
        return self

    def add_tokens(self, token_lists: Sequence[Sequence[str]]) -> LexicalStream:
        """Add a chunk of already tokenised texts (the n-gram metrics only; gzip needs the raw texts)."""
        vocab = self._vocab
        ids = [vocab.setdefault(tok, len(vocab)) for toks in token_lists for tok in toks]
        if len(vocab) > MAX_ID:
            raise ValueError(f"more than {MAX_ID} distinct tokens")
        lengths = np.fromiter((len(toks) for toks in token_lists), dtype=np.int64, count=len(token_lists))
        chunk = TokenChunk(tokens=np.asarray(ids, dtype=np.int64), lengths=lengths, offset=self._n_texts,
                       cache=self._spill is None)
        self._n_texts += chunk.n_texts
        self._lengths.append(lengths.astype(np.int32))
        self._cached_lengths = None
        if self._spill is None:
            self._chunks.append(chunk)
        else:
            self._spill.write(chunk.tokens.astype(np.int32).tobytes())
            self._spilled.append((chunk.offset, chunk.n_texts, int(chunk.tokens.shape[0])))
        if self._eager:
            self._count_orders(chunk, range(1, self._eager + 1))
        return self

    # --- n-gram codes -----------------------------------------------------------------------------

    def _replay(self) -> Iterator[TokenChunk]:
        """The stored chunks in order (read back from the temporary file when spilled)."""
        if self._spill is None:
            yield from self._chunks
            return
        self._spill.flush()
        position = 0
        for (offset, _, n_tokens), lengths in zip(self._spilled, self._lengths, strict=True):
            self._spill.seek(position)
            tokens = np.fromfile(self._spill, dtype=np.int32, count=n_tokens).astype(np.int64)
            position += 4 * n_tokens
            yield TokenChunk(tokens=tokens, lengths=lengths.astype(np.int64), offset=offset)

    def _codes(self, chunk: TokenChunk, n: int) -> np.ndarray:
        """Id of the n-gram starting at each position of the chunk (-1 where fewer than n tokens remain)."""
        if n in chunk._codes:
            return chunk._codes[n]
        if n == 1:
            codes = chunk.tokens
        else:
            prev = self._codes(chunk, n - 1)
            _, remaining = chunk.positions()
            pos = np.flatnonzero(remaining >= n)
            key = (prev[pos] << KEY_SHIFT) | chunk.tokens[pos + n - 1]
            codes = np.full(chunk.tokens.shape[0], -1, dtype=np.int64)
            codes[pos] = self._ids.setdefault(n, OrderIds()).ids_of(key)
        chunk._codes[n] = codes
        # Lower orders are kept only while the next one is being built.
        if not chunk.cache and n - 1 in chunk._codes and n > 2:
            del chunk._codes[n - 1]
        return codes

    def _pairs(self, chunk: TokenChunk, n: int) -> TextGramCounts:
        """Count of each n-gram in each text of the chunk that contains it."""
        if n in chunk._pairs:
            return chunk._pairs[n]
        codes = self._codes(chunk, n)
        text_of, _ = chunk.positions()
        valid = codes >= 0
        width = max(chunk.n_texts, 1)
        key, count = np.unique(codes[valid] * width + text_of[valid], return_counts=True)
        gram, text = np.divmod(key, width)
        starts = np.flatnonzero(np.r_[True, gram[1:] != gram[:-1]]) if gram.size else gram
        pairs = TextGramCounts(gram=gram, text=text, count=count.astype(np.int64), group_starts=starts)
        if chunk.cache:
            chunk._pairs[n] = pairs
        return pairs

    def _count_orders(self, chunk: TokenChunk, orders: Iterable[int]) -> None:
        for n in orders:
            pairs = self._pairs(chunk, n)
            self._stats.setdefault(n, OrderStats()).update(
                pairs, int(np.count_nonzero(self._codes(chunk, n) >= 0)), self.n_unique(n))

    def _ensure(self, n: int) -> None:
        """Count orders up to ``n`` (one replay of the stored chunks for those not counted yet)."""
        if n < 1:
            raise ValueError(f"n-gram order must be >= 1, got {n}")
        missing = [k for k in range(1, n + 1) if k not in self._stats]
        if missing:
            for chunk in self._replay():
                self._count_orders(chunk, missing)
            for k in missing:
                self._stats.setdefault(k, OrderStats())

    # --- results ----------------------------------------------------------------------------------

    @property
    def n_texts(self) -> int:
        return self._n_texts

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per text, all texts (int64)."""
        if self._cached_lengths is None:
            self._cached_lengths = (np.concatenate(self._lengths).astype(np.int64) if self._lengths
                                    else np.zeros(0, dtype=np.int64))
        return self._cached_lengths

    def n_unique(self, n: int) -> int:
        return self.vocab_size if n == 1 else (self._ids[n].n_unique if n in self._ids else 0)

    def ngram_counts(self, n: int) -> tuple[int, int]:
        """(distinct n-grams, all n-grams) over every text added."""
        self._ensure(n)
        return self.n_unique(n), self._stats[n].total

    def distinct(self, n: int) -> float:
        unique, total = self.ngram_counts(n)
        return unique / total if total else 0.0

    def leave_one_out(self, n: int) -> Iterator[np.ndarray]:
        """Distinct-n with each text left out in turn, one array per stored chunk (in text order).

        Removing text i removes its n-grams from the total and, from the unique count, those found
        in no other text (the capped document count of :class:`OrderStats` is 1).
        """
        unique_all, total_all = self.ngram_counts(n)
        docs = self._stats[n].docs
        for chunk in self._replay():
            pairs = self._pairs(chunk, n)
            only_here = np.bincount(pairs.text[docs[pairs.gram] == 1], minlength=chunk.n_texts)
            total = total_all - np.maximum(chunk.lengths - n + 1, 0)
            unique = unique_all - only_here
            with np.errstate(invalid="ignore", divide="ignore"):
                yield np.where(total > 0, unique / np.maximum(total, 1), 0.0)

    def self_bleu(self, *, max_n: int = 4, sample: int | None = None, seed: int = 0) -> SelfBleuResult:
        """See :func:`self_bleu`; one replay of the stored chunks scores the chosen hypotheses."""
        n_texts = self.n_texts
        if n_texts < 2:
            raise ValueError(f"self-BLEU needs at least two texts, got {n_texts}")
        if max_n < 1:
            raise ValueError(f"max_n must be >= 1, got {max_n}")
        chosen: np.ndarray | None = None
        if sample is not None:
            if sample < 1:
                raise ValueError(f"sample must be >= 1, got {sample}")
            if sample < n_texts:
                chosen = np.sort(np.random.default_rng(seed).choice(n_texts, size=sample, replace=False))
        indices = np.arange(n_texts) if chosen is None else chosen
        self._ensure(max_n)
        numerators = np.zeros((indices.shape[0], max_n), dtype=np.int64)
        done = 0
        for chunk in self._replay():
            if chosen is None:
                local = None
                rows_out = np.arange(chunk.n_texts)
            else:
                lo, hi = np.searchsorted(chosen, [chunk.offset, chunk.offset + chunk.n_texts])
                if lo == hi:
                    continue
                local = chosen[lo:hi] - chunk.offset
                rows_out = local
            for n in range(1, max_n + 1):
                numerators[done : done + rows_out.shape[0], n - 1] = self._clipped(chunk, n, local)[rows_out]
            done += rows_out.shape[0]
        hyp_lens = self.lengths[indices]
        ref_lens = _closest_other_length(self.lengths)[indices]
        weight = 1 / max_n
        scores = np.array(
            [
                _sentence_bleu(nums, h, r, weight)
                for nums, h, r in zip(numerators.tolist(), hyp_lens.tolist(), ref_lens.tolist(), strict=True)
            ],
            dtype=np.float64,
        )
        return SelfBleuResult(
            value=math.fsum(scores.tolist()) / scores.shape[0],
            n_hypotheses=int(scores.shape[0]),
            sampled=chosen is not None,
            max_n=max_n,
            indices=indices,
            scores=scores,
        )

    def _clipped(self, chunk: TokenChunk, n: int, local: np.ndarray | None) -> np.ndarray:
        """Per text of the chunk: sum over its n-grams of min(count here, max count in any single OTHER text).

        nltk clips by the maximum count over the reference list. Over "all other texts" that is the
        corpus-wide maximum, unless this text holds the maximum: then it is the second largest count
        (which equals the maximum when another text ties it).
        """
        pairs = self._pairs(chunk, n)
        if pairs.count.size == 0:
            return np.zeros(chunk.n_texts, dtype=np.int64)
        stats = self._stats[n]
        rows = slice(None) if local is None else np.isin(pairs.text, local)
        gram, text, count = pairs.gram[rows], pairs.text[rows], pairs.count[rows]
        top1, top2 = stats.top1[gram], stats.top2[gram]
        other_max = np.where(count == top1, top2, top1)
        # float64 bincount is exact here: counts stay far below 2**53.
        return np.bincount(text, weights=np.minimum(count, other_max), minlength=chunk.n_texts).astype(np.int64)

    def compression_ratio(self) -> float:
        """gzip size / raw size of every text added, joined with newlines (see :func:`compression_ratio`).

        The zlib stream is fed chunk by chunk; deflate's output does not depend on how its input was
        split, so this is byte for byte the size of ``gzip.compress`` of the joined corpus (a test
        checks it on many splits).
        """
        if self._gzip is None:
            raise ValueError("this stream was built without compression")
        if not self.raw_bytes:
            raise ValueError("compression ratio of an empty corpus is undefined")
        if self._gzip_final is None:
            self._gzip_final = self._gzip_size + len(self._gzip.flush())
        return self._gzip_final / self.raw_bytes

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()

    def __enter__(self) -> LexicalStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EncodedCorpus:
    """Token lists encoded once, for callers that compute several n-gram metrics of the same texts.

    A :class:`LexicalStream` fed the whole corpus as one chunk, kept in memory with its n-gram
    codes cached, so :func:`distinct_n`, :func:`self_bleu` and :func:`distinct_n_leave_one_out`
    share the work.
    """

    def __init__(self, stream: LexicalStream) -> None:
        if stream._spill is not None or len(stream._chunks) > 1:
            raise ValueError("EncodedCorpus needs a single in-memory chunk")
        self.stream = stream

    @classmethod
    def from_token_lists(cls, token_lists: Sequence[Sequence[str]]) -> EncodedCorpus:
        return cls(LexicalStream(compress=False, spill=False).add_tokens(token_lists))

    def _chunk(self) -> TokenChunk:
        if not self.stream._chunks:
            self.stream.add_tokens([])
        return self.stream._chunks[0]

    @property
    def tokens(self) -> np.ndarray:
        return self._chunk().tokens

    @property
    def lengths(self) -> np.ndarray:
        return self._chunk().lengths

    @property
    def vocab_size(self) -> int:
        return self.stream.vocab_size

    @property
    def n_texts(self) -> int:
        return self.stream.n_texts

    def table(self, n: int) -> NgramTable:
        """All n-gram occurrences of order ``n`` with their text and dense id."""
        self.stream._ensure(n)
        chunk = self._chunk()
        codes = self.stream._codes(chunk, n)
        text_of, _ = chunk.positions()
        valid = codes >= 0
        return NgramTable(text=text_of[valid], gram=codes[valid], n_unique=self.stream.n_unique(n))


@dataclass(frozen=True)
class SelfBleuResult:
    """Mean self-BLEU and which hypotheses it was averaged over."""

    value: float
    n_hypotheses: int
    sampled: bool
    max_n: int
    indices: np.ndarray = field(repr=False)  # texts scored as hypotheses, ascending
    scores: np.ndarray = field(repr=False)  # their BLEU against all other texts


def _closest_other_length(lengths: np.ndarray) -> np.ndarray:
    """For each text, nltk's ``closest_ref_length`` over the lengths of all *other* texts.

    Closest by absolute difference, ties to the shorter length. Unique lengths are few, so the
    answer is computed once per unique length (with one copy of the text's own length removed)
    and gathered, instead of scanning all references per hypothesis.
    """
    uniq, counts = np.unique(lengths, return_counts=True)
    closest = np.empty(uniq.shape[0], dtype=np.int64)
    for k, (length, count) in enumerate(zip(uniq.tolist(), counts.tolist(), strict=True)):
        if count >= 2:
            closest[k] = length
            continue
        candidates = [int(uniq[j]) for j in (k - 1, k + 1) if 0 <= j < uniq.shape[0]]
        closest[k] = min(candidates, key=lambda r: (abs(r - length), r))
    return closest[np.searchsorted(uniq, lengths)]


def _sentence_bleu(numerators: Sequence[int], hyp_len: int, ref_len: int, weight: float) -> float:
    """nltk ``sentence_bleu`` with ``method1`` smoothing, from precomputed counts.

    Mirrors nltk operation for operation (the same float divisions, ``math.fsum`` of the weighted
    logs, the same brevity penalty) so results agree bit for bit, not just approximately.
    """
    if numerators[0] == 0:  # nltk returns 0 when no unigram matches (also for an empty hypothesis)
        return 0.0
    logs = []
    for order, numer in enumerate(numerators, start=1):
        denom = max(1, hyp_len - order + 1)
        p = numer / denom if numer else (0 + SMOOTHING_EPSILON) / denom
        logs.append(weight * math.log(p))
    if hyp_len > ref_len:
        bp = 1.0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(math.fsum(logs))
