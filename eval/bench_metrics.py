"""Benchmark the set metrics against the textbook implementations they replace.

Run from the repository root: ``python -m eval.bench_metrics`` (``--help`` for sizes).

What it measures, on seeded synthetic data (Zipf-distributed words from a generated vocabulary,
10-40 words per text, so n-grams repeat the way real corpora do):

* self-BLEU on N texts, ours vs nltk's ``sentence_bleu`` looped over every hypothesis with all
  other texts as references. nltk cannot finish N = 10,000 in reasonable time, so it is timed on
  a few hypotheses (each against all N-1 references) and its per-hypothesis cost extrapolated to
  N; that the values agree is checked on those hypotheses and on a smaller corpus scored fully.
* all lexical metrics (tokenise, distinct-1..4, self-BLEU, compression) on 100,000 texts.
* mean pairwise cosine on 100,000 x 384 vectors, vs forming the n x n similarity matrix on a
  subsample (and extrapolating its O(n^2) cost).

Prints a table, writes ``eval/results/bench_metrics.json`` and exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from clusterdiv.metrics.lexical import EncodedCorpus, compression_ratio, distinct_n, self_bleu
from clusterdiv.metrics.semantic import mean_pairwise_cosine
from clusterdiv.metrics.tokenize import tokenize_all

RESULTS_PATH = Path("eval/results/bench_metrics.json")

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def synthetic_texts(n: int, *, seed: int, vocab_size: int, zipf_s: float) -> list[str]:
    """n texts of 10-40 words; words are random lowercase strings drawn with Zipf(s) frequencies."""
    rng = np.random.default_rng(seed)
    letters = np.array(list(string.ascii_lowercase))
    word_lengths = rng.integers(2, 10, size=vocab_size)
    vocab = np.array(["".join(rng.choice(letters, size=k)) for k in word_lengths.tolist()])
    probs = 1.0 / np.arange(1, vocab_size + 1) ** zipf_s
    probs /= probs.sum()
    lengths = rng.integers(10, 41, size=n)
    words = vocab[rng.choice(vocab_size, size=int(lengths.sum()), p=probs)].tolist()
    out, pos = [], 0
    for length in lengths.tolist():
        out.append(" ".join(words[pos : pos + length]))
        pos += length
    return out


def nltk_scores(token_lists: list[list[str]], hypotheses: list[int]) -> list[float]:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    smooth = SmoothingFunction().method1
    return [
        float(
            sentence_bleu(token_lists[:i] + token_lists[i + 1 :], token_lists[i], smoothing_function=smooth)
        )
        for i in hypotheses
    ]


def bench_self_bleu(texts: list[str], n_nltk_hyps: int, seed: int) -> dict[str, Any]:
    tokens = tokenize_all(texts)
    ours, ours_s = timed(lambda: self_bleu(tokens))
    hyps = sorted(np.random.default_rng(seed).choice(len(tokens), size=n_nltk_hyps, replace=False).tolist())
    nltk_vals, nltk_s = timed(lambda: nltk_scores(tokens, hyps))
    per_hyp = nltk_s / n_nltk_hyps
    extrapolated = per_hyp * len(tokens)
    return {
        "n_texts": len(tokens),
        "ours_s": ours_s,
        "ours_value": ours.value,
        "nltk_hypotheses_timed": n_nltk_hyps,
        "nltk_s_for_those": nltk_s,
        "nltk_s_per_hypothesis": per_hyp,
        "nltk_s_extrapolated_all": extrapolated,
        "speedup": extrapolated / ours_s,
        "max_abs_diff_on_timed_hypotheses": max(
            abs(a - b) for a, b in zip(nltk_vals, ours.scores[hyps].tolist(), strict=True)
        ),
    }


def bench_equality(texts: list[str]) -> dict[str, Any]:
    tokens = tokenize_all(texts)
    ours, ours_s = timed(lambda: self_bleu(tokens))
    ref, nltk_s = timed(lambda: nltk_scores(tokens, list(range(len(tokens)))))
    return {
        "n_texts": len(tokens),
        "ours_s": ours_s,
        "nltk_s": nltk_s,
        "speedup": nltk_s / ours_s,
        "ours_mean": ours.value,
        "nltk_mean": math.fsum(ref) / len(ref),
        "max_abs_diff_per_text": max(abs(a - b) for a, b in zip(ref, ours.scores.tolist(), strict=True)),
        "abs_diff_mean": abs(ours.value - math.fsum(ref) / len(ref)),
    }


def bench_lexical(texts: list[str]) -> dict[str, Any]:
    timings: dict[str, float] = {}
    tokens, timings["tokenize_s"] = timed(lambda: tokenize_all(texts))
    corpus, timings["encode_s"] = timed(lambda: EncodedCorpus.from_token_lists(tokens))
    values: dict[str, float] = {}
    for n in (1, 2, 3, 4):
        values[f"distinct_{n}"], timings[f"distinct_{n}_s"] = timed(lambda n=n: distinct_n(corpus, n))
    bleu, timings["self_bleu_s"] = timed(lambda: self_bleu(corpus))
    values["self_bleu"] = bleu.value
    values["compression_ratio"], timings["compression_s"] = timed(lambda: compression_ratio(texts))
    return {
        "n_texts": len(texts),
        "n_tokens": int(corpus.tokens.shape[0]),
        "total_s": sum(timings.values()),
        **timings,
        "values": values,
    }


def bench_registry(texts: list[str], seed: int) -> dict[str, Any]:
    """End to end as the CLI runs it: the lexical group with its intervals."""
    from clusterdiv.metrics.registry import compute_set_metrics

    result, seconds = timed(lambda: compute_set_metrics(texts, select={"lexical"}, seed=seed))
    return {
        "n_texts": len(texts),
        "total_s": seconds,
        "intervals": {name: value.ci95 for name, value in result.items()},
    }


def bench_cosine(n: int, dim: int, baseline_n: int, seed: int, repeats: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim), dtype=np.float32)
    X = centres[rng.integers(0, 20, size=n)] + rng.standard_normal((n, dim), dtype=np.float32)
    runs = [timed(lambda: mean_pairwise_cosine(X)) for _ in range(repeats)]
    value, ours_s = runs[0][0], statistics.median(t for _, t in runs)

    sub = X[:baseline_n].astype(np.float64)

    def full_matrix() -> float:
        U = sub / np.linalg.norm(sub, axis=1, keepdims=True)
        S = U @ U.T
        return float(S[np.triu_indices(baseline_n, k=1)].mean())

    baseline_value, baseline_s = timed(full_matrix)
    sub_value = mean_pairwise_cosine(sub)
    extrapolated = baseline_s * (n / baseline_n) ** 2
    return {
        "n": n,
        "dim": dim,
        "ours_s_median": ours_s,
        "value": value,
        "baseline_n": baseline_n,
        "baseline_s": baseline_s,
        "baseline_s_extrapolated_to_n": extrapolated,
        "baseline_memory_gib_at_n": n * n * 8 / 2**30,
        "speedup_vs_extrapolated": extrapolated / ours_s,
        "abs_diff_on_subsample": abs(sub_value - baseline_value),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab", type=int, default=20_000, help="synthetic vocabulary size")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of word frequencies")
    parser.add_argument("--bleu-texts", type=int, default=10_000)
    parser.add_argument("--nltk-hyps", type=int, default=20, help="hypotheses nltk is timed on")
    parser.add_argument("--equal-texts", type=int, default=500, help="corpus nltk scores fully")
    parser.add_argument("--lexical-texts", type=int, default=100_000)
    parser.add_argument("--cos-n", type=int, default=100_000)
    parser.add_argument("--cos-dim", type=int, default=384)
    parser.add_argument("--cos-baseline-n", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)

    texts = synthetic_texts(
        max(args.lexical_texts, args.bleu_texts, args.equal_texts),
        seed=args.seed,
        vocab_size=args.vocab,
        zipf_s=args.zipf,
    )
    results: dict[str, Any] = {
        "machine": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
        "data": {"seed": args.seed, "vocab": args.vocab, "zipf_s": args.zipf, "words_per_text": [10, 40]},
    }
    print("self-BLEU equality vs nltk ...", flush=True)
    results["self_bleu_equality"] = bench_equality(texts[: args.equal_texts])
    print("self-BLEU speed vs nltk ...", flush=True)
    results["self_bleu_speed"] = bench_self_bleu(texts[: args.bleu_texts], args.nltk_hyps, args.seed)
    print("lexical metrics ...", flush=True)
    results["lexical"] = bench_lexical(texts[: args.lexical_texts])
    print("registry, lexical group with intervals ...", flush=True)
    results["registry_lexical"] = bench_registry(texts[: args.lexical_texts], args.seed)
    print("mean pairwise cosine ...", flush=True)
    results["cosine"] = bench_cosine(args.cos_n, args.cos_dim, args.cos_baseline_n, args.seed)

    eq, sp, lex, cos = (results[k] for k in ("self_bleu_equality", "self_bleu_speed", "lexical", "cosine"))
    targets = {
        "self_bleu_speedup_ge_50x": sp["speedup"] >= 50,
        "self_bleu_equals_nltk_1e-9": max(eq["max_abs_diff_per_text"], sp["max_abs_diff_on_timed_hypotheses"])
        <= 1e-9,
        "lexical_100k_under_60s": lex["total_s"] < 60,
        "cosine_100k_under_1s": cos["ours_s_median"] < 1,
    }
    results["targets"] = targets

    rows = [
        (
            f"self-BLEU, {eq['n_texts']} texts, full nltk loop",
            f"{eq['ours_s']:.3f} s",
            f"{eq['nltk_s']:.1f} s",
            f"{eq['speedup']:.0f}x",
            f"max |diff| {eq['max_abs_diff_per_text']:.1e}",
        ),
        (
            f"self-BLEU, {sp['n_texts']} texts (nltk: {sp['nltk_hypotheses_timed']} hyps, extrapolated)",
            f"{sp['ours_s']:.2f} s",
            f"{sp['nltk_s_extrapolated_all']:.0f} s ({sp['nltk_s_per_hypothesis']:.3f} s/hyp)",
            f"{sp['speedup']:.0f}x",
            f"max |diff| {sp['max_abs_diff_on_timed_hypotheses']:.1e}",
        ),
        (
            f"lexical metrics, {lex['n_texts']} texts ({lex['n_tokens']} tokens)",
            f"{lex['total_s']:.1f} s",
            "-",
            "-",
            f"tok {lex['tokenize_s']:.1f} s, self-BLEU {lex['self_bleu_s']:.1f} s, "
            f"gzip {lex['compression_s']:.1f} s",
        ),
        (
            f"compute_set_metrics lexical group, {results['registry_lexical']['n_texts']} texts",
            f"{results['registry_lexical']['total_s']:.1f} s",
            "-",
            "-",
            "incl. jackknife intervals for distinct-n",
        ),
        (
            f"mean cosine, {cos['n']} x {cos['dim']} (n x n baseline on {cos['baseline_n']})",
            f"{cos['ours_s_median']:.3f} s",
            f"{cos['baseline_s']:.2f} s -> {cos['baseline_s_extrapolated_to_n']:.0f} s at n",
            f"{cos['speedup_vs_extrapolated']:.0f}x",
            f"|diff| on subsample {cos['abs_diff_on_subsample']:.1e}",
        ),
    ]
    header = ("benchmark", "ours", "baseline", "speedup", "check")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    print()
    for name, ok in targets.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
