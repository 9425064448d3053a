"""Lexical metrics against independent computations: nltk's sentence_bleu, brute-force n-gram sets,
gzip called directly, a textbook LCS table."""

from __future__ import annotations

import gzip
import math
import random
import subprocess
import sys

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from clusterdiv.metrics.lexical import (
    GZIP_LEVEL,
    EncodedCorpus,
    compression_ratio,
    distinct_n,
    distinct_n_leave_one_out,
    lcs_length,
    rouge_l_homogenization,
    self_bleu,
)
from clusterdiv.metrics.registry import ALL_METRICS, METRIC_GROUPS, compute_set_metrics, resolve_selection
from clusterdiv.metrics.tokenize import tokenize, tokenize_all

SMOOTH = SmoothingFunction().method1


def nltk_self_bleu_scores(token_lists: list[list[str]], max_n: int = 4) -> list[float]:
    weights = tuple([1 / max_n] * max_n)
    return [
        float(
            sentence_bleu(
                [t for j, t in enumerate(token_lists) if j != i],
                hyp,
                weights=weights,
                smoothing_function=SMOOTH,
            )
        )
        for i, hyp in enumerate(token_lists)
    ]


def random_corpus(
    seed: int, n_texts: int, vocab: int, max_len: int, dup_rate: float = 0.2
) -> list[list[str]]:
    """Small vocabularies so n-grams repeat; lengths from 0 so empty and shorter-than-n texts occur."""
    rng = random.Random(seed)
    corpus: list[list[str]] = []
    for _ in range(n_texts):
        if corpus and rng.random() < dup_rate:
            corpus.append(list(rng.choice(corpus)))
        else:
            corpus.append([f"w{rng.randrange(vocab)}" for _ in range(rng.randint(0, max_len))])
    return corpus


def brute_distinct(token_lists: list[list[str]], n: int) -> float:
    grams = [tuple(t[i : i + n]) for t in token_lists for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


# ---------------------------------------------------------------- tokenisation


def test_tokenize_latin_words_and_punctuation():
    assert tokenize("Hello, World! It's 3.14") == ["hello", ",", "world", "!", "it", "'", "s", "3", ".", "14"]


def test_tokenize_nfkc_folds_compatibility_forms():
    assert tokenize("ＦＵＬＬ ﬁne") == ["full", "fine"]


def test_tokenize_no_space_scripts_one_token_per_character():
    assert tokenize("我喜欢语言。") == ["我", "喜", "欢", "语", "言", "。"]
    assert tokenize("カタカナ") == ["カ", "タ", "カ", "ナ"]
    thai = "ภาษาไทย"
    assert tokenize(thai) == list(thai)


def test_tokenize_spaced_non_latin_scripts_keep_words():
    assert tokenize("Привет, мир!") == ["привет", ",", "мир", "!"]
    assert tokenize("مرحبا بالعالم") == ["مرحبا", "بالعالم"]
    # Devanagari vowel signs are combining marks, which Python's \w alone would split on.
    assert tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert tokenize("한국어 문장") == ["한국어", "문장"]


def test_tokenize_empty_and_whitespace():
    assert tokenize("") == []
    assert tokenize_all(["  \n\t", "a"]) == [[], ["a"]]


# ---------------------------------------------------------------- distinct-n


@pytest.mark.parametrize("seed", range(5))
def test_distinct_n_matches_brute_force(seed):
    corpus = random_corpus(seed, n_texts=40, vocab=8, max_len=12)
    encoded = EncodedCorpus.from_token_lists(corpus)
    for n in range(1, 6):
        assert distinct_n(corpus, n) == pytest.approx(brute_distinct(corpus, n), abs=1e-15)
        assert distinct_n(encoded, n) == pytest.approx(brute_distinct(corpus, n), abs=1e-15)


def test_distinct_n_ids_are_a_bijection_with_ngram_tuples():
    corpus = random_corpus(11, n_texts=30, vocab=5, max_len=10)
    encoded = EncodedCorpus.from_token_lists(corpus)
    for n in (1, 2, 3, 4):
        grams = [tuple(t[i : i + n]) for t in corpus for i in range(len(t) - n + 1)]
        ids = encoded.table(n).gram.tolist()
        assert len(ids) == len(grams)
        assert len(set(zip(ids, grams, strict=True))) == len(set(grams)) == len(set(ids))


def test_distinct_n_without_ngrams_is_zero():
    assert distinct_n([["a"], ["b", "c"]], 3) == 0.0
    assert distinct_n([], 1) == 0.0
    assert distinct_n([[], []], 1) == 0.0


def test_distinct_n_identical_texts():
    corpus = [["a", "b", "c"]] * 5
    assert distinct_n(corpus, 1) == pytest.approx(3 / 15)
    assert distinct_n(corpus, 3) == pytest.approx(1 / 5)


def test_distinct_n_leave_one_out_matches_recomputation():
    corpus = random_corpus(3, n_texts=25, vocab=6, max_len=8)
    encoded = EncodedCorpus.from_token_lists(corpus)
    for n in (1, 2, 4):
        fast = distinct_n_leave_one_out(encoded, n)
        slow = [brute_distinct(corpus[:i] + corpus[i + 1 :], n) for i in range(len(corpus))]
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-15)


# ---------------------------------------------------------------- self-BLEU


@pytest.mark.parametrize(
    ("seed", "n_texts", "vocab", "max_len"),
    [(0, 30, 6, 12), (1, 25, 3, 6), (2, 40, 20, 25), (3, 12, 2, 4), (4, 30, 10, 3)],
)
def test_self_bleu_equals_nltk_loop(seed, n_texts, vocab, max_len):
    corpus = random_corpus(seed, n_texts, vocab, max_len, dup_rate=0.25)
    expected = nltk_self_bleu_scores(corpus)
    result = self_bleu(corpus)
    assert result.n_hypotheses == len(corpus) and not result.sampled
    np.testing.assert_allclose(result.scores, expected, rtol=0, atol=1e-9)
    assert result.value == pytest.approx(sum(expected) / len(expected), abs=1e-9)


@pytest.mark.parametrize("max_n", [1, 2, 3, 5])
def test_self_bleu_other_orders_equal_nltk(max_n):
    corpus = random_corpus(7, n_texts=20, vocab=5, max_len=9)
    np.testing.assert_allclose(
        self_bleu(corpus, max_n=max_n).scores, nltk_self_bleu_scores(corpus, max_n), atol=1e-9
    )


def test_self_bleu_edge_cases_equal_nltk():
    corpus = [
        [],  # empty hypothesis: nltk gives 0
        ["z", "y"],  # no unigram shared with any other text: 0
        ["a"],  # shorter than every n > 1
        ["a", "b"],
        ["a", "b", "c", "d", "e"],  # length 5; others at 4 and 6 tie: nltk takes the shorter (4)
        ["a", "b", "c", "d"],
        ["a", "b", "c", "d", "e", "f"],
        ["a", "b", "a", "b", "a", "b"],  # repeats: clipping by the max count in one reference
        ["b", "a", "b"],
    ]
    expected = nltk_self_bleu_scores(corpus)
    result = self_bleu(corpus)
    np.testing.assert_allclose(result.scores, expected, rtol=0, atol=1e-9)
    assert result.scores[0] == 0.0 and result.scores[1] == 0.0


def test_self_bleu_clips_by_max_over_single_reference_not_sum():
    # "a a a" against two references with one "a" each: clip is 1 (max), not 2 (sum).
    corpus = [["a", "a", "a"], ["a", "x"], ["a", "y"]]
    expected = nltk_self_bleu_scores(corpus)
    assert self_bleu(corpus).scores[0] == pytest.approx(expected[0], abs=1e-12)


def test_self_bleu_unique_argmax_uses_second_largest_count():
    # Text 0 holds the only maximum count of "a" (3); the others have 2 and 1, so its clip is 2.
    corpus = [["a", "a", "a"], ["a", "a", "q"], ["a", "r"], ["a", "a", "a", "s"]]
    np.testing.assert_allclose(self_bleu(corpus).scores, nltk_self_bleu_scores(corpus), atol=1e-12)


def test_self_bleu_non_latin_scripts_equal_nltk():
    texts = [
        "我喜欢自然语言处理。",
        "我喜欢机器学习。",
        "自然语言处理很有趣。",
        "مرحبا بالعالم الجميل",
        "مرحبا بالعالم",
        "Привет, мир! Как дела?",
        "Привет, друг! Как дела?",
        "ภาษาไทยง่าย",
    ]
    corpus = tokenize_all(texts)
    np.testing.assert_allclose(self_bleu(corpus).scores, nltk_self_bleu_scores(corpus), atol=1e-9)


def test_self_bleu_identical_texts_is_one():
    assert self_bleu([["the", "cat", "sat", "on", "the", "mat"]] * 4).value == pytest.approx(1.0)


def test_self_bleu_needs_two_texts():
    with pytest.raises(ValueError, match="at least two"):
        self_bleu([["a", "b"]])


def test_self_bleu_sample_scores_subset_against_all_references():
    corpus = random_corpus(5, n_texts=50, vocab=7, max_len=10)
    full = self_bleu(corpus)
    sampled = self_bleu(corpus, sample=12, seed=3)
    assert sampled.sampled and sampled.n_hypotheses == 12
    assert len(set(sampled.indices.tolist())) == 12
    np.testing.assert_array_equal(sampled.scores, full.scores[sampled.indices])
    again = self_bleu(corpus, sample=12, seed=3)
    np.testing.assert_array_equal(again.indices, sampled.indices)
    assert not self_bleu(corpus, sample=len(corpus)).sampled


# ---------------------------------------------------------------- compression


def test_compression_ratio_is_gzip_of_joined_corpus_and_deterministic():
    texts = ["the cat sat on the mat", "a dog ran", "the cat sat on the mat again"]
    raw = "\n".join(texts).encode("utf-8")
    expected = len(gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)) / len(raw)
    assert compression_ratio(texts) == expected == compression_ratio(list(texts))


def test_compression_ratio_lower_for_repetitive_corpus():
    rng = random.Random(0)
    varied = [" ".join(f"w{rng.randrange(5000)}" for _ in range(20)) for _ in range(300)]
    repetitive = ["the same sentence is written here again"] * 300
    assert compression_ratio(repetitive) < compression_ratio(varied)


def test_compression_ratio_empty_raises():
    with pytest.raises(ValueError):
        compression_ratio([""])


# ---------------------------------------------------------------- ROUGE-L


def dp_lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_lcs_bit_parallel_matches_dynamic_programming():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 80))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 80))]
        assert lcs_length(a, b) == dp_lcs(a, b)


def test_rouge_l_homogenization_exhaustive_matches_brute_force():
    corpus = random_corpus(9, n_texts=15, vocab=6, max_len=10)
    scores = []
    for i in range(len(corpus)):
        for j in range(i + 1, len(corpus)):
            a, b = corpus[i], corpus[j]
            lcs = dp_lcs(a, b)
            scores.append(0.0 if lcs == 0 else 2 * lcs / (len(a) + len(b)))  # F1 = 2 LCS / (|a| + |b|)
    result = rouge_l_homogenization(corpus)
    assert result.exhaustive and result.n_pairs == len(scores)
    assert result.value == pytest.approx(math.fsum(scores) / len(scores), abs=1e-12)


def test_rouge_l_homogenization_samples_pairs_when_too_many():
    corpus = random_corpus(1, n_texts=100, vocab=6, max_len=10, dup_rate=0.0)
    result = rouge_l_homogenization(corpus, max_pairs=500, seed=1)
    assert not result.exhaustive and result.n_pairs == 500
    assert result.value == rouge_l_homogenization(corpus, max_pairs=500, seed=1).value
    exact = rouge_l_homogenization(corpus, max_pairs=10**6).value
    assert abs(result.value - exact) < 0.05
    assert rouge_l_homogenization([["a", "b"]] * 3).value == pytest.approx(1.0)


# ---------------------------------------------------------------- registry, lexical group


def test_lexical_group_values_and_names():
    texts = ["the cat sat on the mat", "the dog sat on the log", "a bird flew", "the cat sat on the mat"]
    result = compute_set_metrics(texts, select={"lexical"})
    assert list(result) == METRIC_GROUPS["lexical"]
    corpus = tokenize_all(texts)
    for n in (1, 2, 3, 4):
        assert result[f"distinct_{n}"].value == pytest.approx(brute_distinct(corpus, n))
        lo, hi = result[f"distinct_{n}"].ci95
        assert lo <= result[f"distinct_{n}"].value <= hi
    expected_bleu = nltk_self_bleu_scores(corpus)
    assert result["self_bleu"].value == pytest.approx(sum(expected_bleu) / len(expected_bleu), abs=1e-9)
    assert result["compression_ratio"].value == compression_ratio(texts)
    assert all(v.meaning and "\n" not in v.meaning for v in result.values())


def test_registry_single_text_reports_undefined_instead_of_failing():
    result = compute_set_metrics(["only one text here"], select={"lexical"})
    assert result["self_bleu"].value is None and "two texts" in result["self_bleu"].details["reason"]
    assert result["distinct_1"].value == 1.0


def test_registry_seeded_intervals_are_reproducible():
    rng = random.Random(0)
    texts = [" ".join(f"w{rng.randrange(50)}" for _ in range(rng.randint(3, 15))) for _ in range(80)]
    a = compute_set_metrics(texts, select={"compression_ratio", "distinct_2"}, seed=4)
    b = compute_set_metrics(texts, select={"compression_ratio", "distinct_2"}, seed=4)
    assert a == b
    assert a["compression_ratio"].ci95[0] < a["compression_ratio"].value < a["compression_ratio"].ci95[1]
    assert compute_set_metrics(texts, select={"distinct_2"}, bootstrap=0)["distinct_2"].ci95 is None


def test_resolve_selection_groups_names_and_typos():
    assert resolve_selection("lexical,vendi") == {*METRIC_GROUPS["lexical"], "vendi"}
    assert resolve_selection(None) == set(ALL_METRICS)
    with pytest.raises(ValueError, match="unknown metric"):
        resolve_selection("lexcial")


def test_registry_lexical_does_not_import_torch():
    code = (
        "import sys; import clusterdiv.metrics.registry as r; "
        "r.compute_set_metrics(['a b', 'c d'], select={'lexical'}); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
