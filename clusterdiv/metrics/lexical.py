"""Lexical set-level diversity: distinct-n, self-BLEU, compression ratio, ROUGE-L homogenisation.

All functions take token lists made by :mod:`clusterdiv.metrics.tokenize` (or an
:class:`EncodedCorpus` built from them), so figures from different runs are comparable.

Why the :class:`EncodedCorpus`: every n-gram metric needs the same thing, "which n-gram is at
this position", and hashing tuples of strings in Python is what makes the textbook loops slow.
Tokens are mapped to integers once and each order's n-grams get dense integer ids by a sort
(``np.unique`` over (id of the (n-1)-gram, next token) pairs), so ids are exact, collision-free,
and everything after that is array arithmetic shared by distinct-n, self-BLEU and the jackknife.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "GZIP_LEVEL",
    "EncodedCorpus",
    "HomogenizationResult",
    "SelfBleuResult",
    "compression_ratio",
    "distinct_n",
    "distinct_n_leave_one_out",
    "lcs_length",
    "rouge_l_homogenization",
    "self_bleu",
]

GZIP_LEVEL = 9
"""gzip level for :func:`compression_ratio`: 9, the ``gzip`` command's and Python's default, so the
figure can be reproduced with ``gzip -9``."""

SMOOTHING_EPSILON = 0.1
"""nltk's ``SmoothingFunction().method1`` epsilon: the numerator given to an order with no match."""


@dataclass(frozen=True)
class _NgramTable:
    """Occurrences of one n-gram order: for each occurrence, its text and its dense n-gram id."""

    text: np.ndarray  # int64, text index of each occurrence, non-decreasing
    gram: np.ndarray  # int64, dense id in [0, n_unique)
    n_unique: int


@dataclass(frozen=True)
class _TextGramCounts:
    """One row per distinct (n-gram, text) pair, sorted by n-gram then text, with its count."""

    gram: np.ndarray
    text: np.ndarray
    count: np.ndarray
    group_starts: np.ndarray  # first row of each n-gram; row group k is n-gram id k


@dataclass
class EncodedCorpus:
    """Token lists as one integer array, with per-order n-gram ids computed once and cached.

    Build it once (``EncodedCorpus.from_token_lists``) and pass it to :func:`distinct_n`,
    :func:`self_bleu` and :func:`distinct_n_leave_one_out` so they share the work.
    """

    tokens: np.ndarray  # int64 token ids of all texts, concatenated
    lengths: np.ndarray  # int64 number of tokens of each text
    vocab_size: int
    _tables: dict[int, _NgramTable] = field(default_factory=dict, repr=False)
    _codes: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _pairs: dict[int, _TextGramCounts] = field(default_factory=dict, repr=False)
    _positions: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def from_token_lists(cls, token_lists: Sequence[Sequence[str]]) -> EncodedCorpus:
        vocab: dict[str, int] = {}
        ids = [vocab.setdefault(tok, len(vocab)) for toks in token_lists for tok in toks]
        lengths = np.fromiter((len(toks) for toks in token_lists), dtype=np.int64, count=len(token_lists))
        return cls(tokens=np.asarray(ids, dtype=np.int64), lengths=lengths, vocab_size=len(vocab))

    @property
    def n_texts(self) -> int:
        return int(self.lengths.shape[0])

    def _position_info(self) -> tuple[np.ndarray, np.ndarray]:
        """(text index, tokens left until the end of its text) for every token position."""
        if self._positions is None:
            text_of = np.repeat(np.arange(self.n_texts, dtype=np.int64), self.lengths)
            ends = np.cumsum(self.lengths)
            remaining = ends[text_of] - np.arange(self.tokens.shape[0], dtype=np.int64)
            self._positions = (text_of, remaining)
        return self._positions

    def _gram_codes(self, n: int) -> np.ndarray:
        """Dense id of the n-gram starting at each position (-1 where fewer than n tokens remain)."""
        if n in self._codes:
            return self._codes[n]
        if n == 1:
            codes = self.tokens.copy()
        else:
            prev = self._gram_codes(n - 1)
            _, remaining = self._position_info()
            pos = np.flatnonzero(remaining >= n)
            # (n-1)-gram id and next token -> one int64 key; both are < number of tokens, so the
            # key cannot overflow for any corpus below ~3e9 tokens.
            key = prev[pos] * max(self.vocab_size, 1) + self.tokens[pos + n - 1]
            _, dense = np.unique(key, return_inverse=True)
            codes = np.full(self.tokens.shape[0], -1, dtype=np.int64)
            codes[pos] = dense.reshape(-1)
        self._codes[n] = codes
        return codes

    def table(self, n: int) -> _NgramTable:
        """All n-gram occurrences of order ``n`` with their text and dense id."""
        if n < 1:
            raise ValueError(f"n-gram order must be >= 1, got {n}")
        if n not in self._tables:
            codes = self._gram_codes(n)
            text_of, _ = self._position_info()
            valid = codes >= 0
            gram = codes[valid]
            n_unique = int(gram.max()) + 1 if gram.size else 0
            self._tables[n] = _NgramTable(text=text_of[valid], gram=gram, n_unique=n_unique)
        return self._tables[n]

    def text_gram_counts(self, n: int) -> _TextGramCounts:
        """Count of each n-gram in each text that contains it."""
        if n not in self._pairs:
            tab = self.table(n)
            n_texts = max(self.n_texts, 1)
            key, count = np.unique(tab.gram * n_texts + tab.text, return_counts=True)
            gram, text = np.divmod(key, n_texts)
            starts = np.flatnonzero(np.r_[True, gram[1:] != gram[:-1]]) if gram.size else gram
            self._pairs[n] = _TextGramCounts(
                gram=gram, text=text, count=count.astype(np.int64), group_starts=starts
            )
        return self._pairs[n]


def _encoded(corpus: Sequence[Sequence[str]] | EncodedCorpus) -> EncodedCorpus:
    return corpus if isinstance(corpus, EncodedCorpus) else EncodedCorpus.from_token_lists(corpus)


def distinct_n(token_lists: Sequence[Sequence[str]] | EncodedCorpus, n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / total n-grams, pooled over the whole corpus.

    Pooled, not averaged per text, because set-level diversity is about repetition *across*
    examples; a per-text average would rate a corpus of one sentence copied 1000 times as diverse.
    Texts shorter than ``n`` contribute no n-grams. With no n-gram at all the ratio is 0/0;
    we return 0.0 (nothing diverse was observed) rather than NaN so tables stay numeric.
    """
    tab = _encoded(token_lists).table(n)
    total = tab.gram.shape[0]
    return tab.n_unique / total if total else 0.0


def distinct_n_leave_one_out(corpus: EncodedCorpus, n: int) -> np.ndarray:
    """Distinct-n of the corpus with each text left out in turn (for a jackknife interval).

    Why not a bootstrap: a resample drawn with replacement repeats ~37% of the texts, and repeats
    are exactly what distinct-n counts, so bootstrap replicates sit far below the estimate (on
    Zipf-like synthetic corpora their 95% range did not even contain it). Leaving one text out
    adds no artificial repeat, and the jackknife standard error tracked the spread over
    independently drawn corpora when we checked. Exact and O(number of n-grams): removing text i
    removes its n-grams from the total and, from the unique count, those found in no other text.
    """
    pairs = corpus.text_gram_counts(n)
    tab = corpus.table(n)
    per_text_total = np.bincount(tab.text, minlength=corpus.n_texts)
    if pairs.count.size:
        doc_freq = np.diff(np.r_[pairs.group_starts, pairs.count.shape[0]])
        only_here = np.bincount(pairs.text[doc_freq[pairs.gram] == 1], minlength=corpus.n_texts)
    else:
        only_here = np.zeros(corpus.n_texts, dtype=np.int64)
    total = tab.gram.shape[0] - per_text_total
    unique = tab.n_unique - only_here
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, unique / np.maximum(total, 1), 0.0)


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


def _clipped_matches(corpus: EncodedCorpus, n: int, chosen: np.ndarray | None) -> np.ndarray:
    """Per text: sum over its n-grams of min(count here, max count in any single OTHER text).

    nltk clips by the maximum count over the reference list. Over "all other texts" that is the
    corpus-wide maximum, unless this text holds the maximum: then it is the second largest count
    (which equals the maximum when another text ties it). Top-1/top-2 per n-gram are computed once
    for the whole corpus, so each hypothesis then costs O(its own length).
    """
    pairs = corpus.text_gram_counts(n)
    if pairs.count.size == 0:
        return np.zeros(corpus.n_texts, dtype=np.int64)
    top1 = np.maximum.reduceat(pairs.count, pairs.group_starts)
    is_max = pairs.count == top1[pairs.gram]
    max_rows = np.flatnonzero(is_max)
    first_max = max_rows[np.r_[True, pairs.gram[max_rows[1:]] != pairs.gram[max_rows[:-1]]]]
    without_first = pairs.count.copy()
    without_first[first_max] = 0
    top2 = np.maximum.reduceat(without_first, pairs.group_starts)
    rows = slice(None) if chosen is None else np.isin(pairs.text, chosen)
    gram, text, count = pairs.gram[rows], pairs.text[rows], pairs.count[rows]
    other_max = np.where(count == top1[gram], top2[gram], top1[gram])
    # float64 bincount is exact here: counts stay far below 2**53.
    return np.bincount(text, weights=np.minimum(count, other_max), minlength=corpus.n_texts).astype(np.int64)


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


def self_bleu(
    token_lists: Sequence[Sequence[str]] | EncodedCorpus,
    *,
    max_n: int = 4,
    sample: int | None = None,
    seed: int = 0,
) -> SelfBleuResult:
    """Self-BLEU (Zhu et al. 2018): each text's BLEU against all other texts, averaged.

    Equal to averaging ``nltk.translate.bleu_score.sentence_bleu(references=<all other texts>,
    hypothesis=<text>, weights=(1/max_n,)*max_n, smoothing_function=SmoothingFunction().method1)``,
    including nltk's edge cases: a hypothesis shorter than n gets the smoothed precision 0.1 for
    that order; an empty hypothesis or one with no matching unigram scores 0. Higher = the texts
    repeat each other's phrasing more (less diverse).

    ``sample`` scores only a seeded random subset of that many hypotheses (each still against
    all other texts); the result says so. With the corpus-wide tables each hypothesis costs
    O(its length), so sampling saves little time; it exists to reproduce the sampled self-BLEU
    some papers report. Needs at least two texts (with one there is no reference).
    """
    corpus = _encoded(token_lists)
    n_texts = corpus.n_texts
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

    numerators = np.stack([_clipped_matches(corpus, n, chosen)[indices] for n in range(1, max_n + 1)], 1)
    hyp_lens = corpus.lengths[indices]
    ref_lens = _closest_other_length(corpus.lengths)[indices]
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


def compression_ratio(texts: Sequence[str]) -> float:
    """gzip-compressed size of ``"\\n".join(texts)`` divided by its raw UTF-8 size.

    Lower = more redundant (the compressor found repeats). Shaib et al. (2024) report the inverse
    (raw / compressed); we keep "compressed over raw" so that, like distinct-n, higher means more
    diverse. Level :data:`GZIP_LEVEL`, ``mtime=0`` so the bytes (and the figure) are deterministic.
    gzip only sees repeats within a 32 KiB window and adds ~20 header bytes, so tiny corpora get
    ratios near or above 1 and the figure is most meaningful for corpora of many KiB.
    """
    raw = "\n".join(texts).encode("utf-8")
    if not raw:
        raise ValueError("compression ratio of an empty corpus is undefined")
    return len(gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)) / len(raw)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences.

    Bit-parallel (Allison-Dix / Hyyroe): one big-integer add/or/and per token of ``b`` instead of
    a |a| x |b| table, which is what makes sampled ROUGE-L affordable in pure Python.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    row = full
    for tok in b:
        match = row & masks.get(tok, 0)
        row = ((row + match) | (row - match)) & full
    return len(a) - row.bit_count()


def _rouge_l_f(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 (beta = 1, as in the ``rouge-score`` package); 0 if either text is empty."""
    if not a or not b:
        return 0.0
    lcs = lcs_length(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class HomogenizationResult:
    """Mean pairwise ROUGE-L F1 and the pairs it was averaged over."""

    value: float
    n_pairs: int
    exhaustive: bool  # True: all unordered pairs; False: a seeded uniform sample of pairs


def rouge_l_homogenization(
    token_lists: Sequence[Sequence[str]], *, max_pairs: int = 2000, seed: int = 0
) -> HomogenizationResult:
    """Homogenisation score (Padmakumar & He 2024): mean ROUGE-L F1 over pairs of distinct texts.

    All n(n-1)/2 pairs are quadratic, so when there are more than ``max_pairs`` we average over
    ``max_pairs`` pairs drawn uniformly with a seeded generator (i != j, drawn with replacement);
    the result's ``exhaustive`` flag says which. Higher = texts share longer word sequences.
    Needs at least two texts.
    """
    n = len(token_lists)
    if n < 2:
        raise ValueError(f"homogenisation needs at least two texts, got {n}")
    total_pairs = n * (n - 1) // 2
    if total_pairs <= max_pairs:
        left, right = np.triu_indices(n, k=1)
        exhaustive = True
    else:
        rng = np.random.default_rng(seed)
        left = rng.integers(0, n, size=max_pairs)
        right = (left + rng.integers(1, n, size=max_pairs)) % n  # uniform over j != i
        exhaustive = False
    scores = [
        _rouge_l_f(token_lists[i], token_lists[j]) for i, j in zip(left.tolist(), right.tolist(), strict=True)
    ]
    return HomogenizationResult(
        value=math.fsum(scores) / len(scores), n_pairs=len(scores), exhaustive=exhaustive
    )
