"""Lexical set-level diversity: distinct-n, self-BLEU, compression ratio, ROUGE-L homogenisation.

All functions take token lists made by :mod:`clusterdiv.metrics.tokenize` (or an
:class:`EncodedCorpus` built from them), so figures from different runs are comparable. Each is
:class:`~clusterdiv.metrics.lexical_stream.LexicalStream` fed a single chunk, so a corpus streamed
in chunks (`clusterdiv metrics --metrics lexical`) gets exactly the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clusterdiv.metrics.lexical_stream import GZIP_LEVEL, EncodedCorpus, LexicalStream, SelfBleuResult

__all__ = [
    "GZIP_LEVEL",
    "EncodedCorpus",
    "HomogenizationResult",
    "LexicalStream",
    "SelfBleuResult",
    "compression_ratio",
    "distinct_n",
    "distinct_n_leave_one_out",
    "lcs_length",
    "rouge_l_homogenization",
    "self_bleu",
]


def _stream_of(corpus: Sequence[Sequence[str]] | EncodedCorpus) -> LexicalStream:
    return (corpus if isinstance(corpus, EncodedCorpus) else EncodedCorpus.from_token_lists(corpus)).stream


def distinct_n(token_lists: Sequence[Sequence[str]] | EncodedCorpus, n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / total n-grams, pooled over the whole corpus.

    Pooled, not averaged per text, because set-level diversity is about repetition *across*
    examples; a per-text average would rate a corpus of one sentence copied 1000 times as diverse.
    Texts shorter than ``n`` contribute no n-grams. With no n-gram at all the ratio is 0/0;
    we return 0.0 (nothing diverse was observed) rather than NaN so tables stay numeric.
    """
    return _stream_of(token_lists).distinct(n)


def distinct_n_leave_one_out(corpus: EncodedCorpus, n: int) -> np.ndarray:
    """Distinct-n of the corpus with each text left out in turn (for a jackknife interval).

    Why not a bootstrap: a resample drawn with replacement repeats ~37% of the texts, and repeats
    are exactly what distinct-n counts, so bootstrap replicates sit far below the estimate (on
    Zipf-like synthetic corpora their 95% range did not even contain it). Leaving one text out
    adds no artificial repeat, and the jackknife standard error tracked the spread over
    independently drawn corpora when we checked. Exact and O(number of n-grams).
    """
    parts = list(corpus.stream.leave_one_out(n))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


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
    return _stream_of(token_lists).self_bleu(max_n=max_n, sample=sample, seed=seed)


def compression_ratio(texts: Sequence[str]) -> float:
    """gzip-compressed size of ``"\\n".join(texts)`` divided by its raw UTF-8 size.

    Lower = more redundant (the compressor found repeats). Shaib et al. (2024) report the inverse
    (raw / compressed); we keep "compressed over raw" so that, like distinct-n, higher means more
    diverse. Level :data:`GZIP_LEVEL`, ``mtime=0`` so the bytes (and the figure) are deterministic.
    gzip only sees repeats within a 32 KiB window and adds ~20 header bytes, so tiny corpora get
    ratios near or above 1 and the figure is most meaningful for corpora of many KiB.
    """
    return LexicalStream(compress=True, spill=False).add_raw(texts).compression_ratio()


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
