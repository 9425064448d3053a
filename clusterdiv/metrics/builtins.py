"""The built-in set metrics: one compute function each, declared in `BUILTINS` with name, group,
meaning, direction and value range. The registry (registry.py) lists them first and adds plugin metrics after.

Each returns an undefined value with its reason rather than raising, because one metric that
cannot be computed should not cost the report the others.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from clusterdiv.metrics import lexical, reference, semantic
from clusterdiv.metrics.spec import (
    COMPRESSION_CI_MAX_BYTES,
    JACKKNIFE_GROUPS,
    LESS_DIVERSE,
    MORE_DIVERSE,
    NO_DIRECTION,
    SHARE,
    MetricCompute,
    MetricInputs,
    MetricSpec,
    MetricValue,
    too_few,
)

DISTINCT_ORDERS = (1, 2, 3, 4)


Z95 = 1.959963984540054  # standard normal 97.5% quantile
KNN_K = 5


def _distinct(n: int) -> MetricCompute:
    name = f"distinct_{n}"

    def compute(inputs: MetricInputs) -> MetricValue:
        stream = inputs.lexical
        unique, total = stream.ngram_counts(n)
        details: dict[str, Any] = {"unique_ngrams": unique, "total_ngrams": total}
        if not total:
            return _undefined(name, _no_ngrams(n), **details)
        value = stream.distinct(n)
        ci = None
        if inputs.bootstrap > 0 and (few := too_few(stream.n_texts)):
            details["ci_skipped"] = few
        elif inputs.bootstrap > 0 and stream.n_texts > 1:
            ci = _jackknife_ci_parts(value, stream.leave_one_out(n), bounds=(0.0, 1.0))
            details["ci_method"] = "leave-one-text-out jackknife, normal"
        return _value(name, value, ci95=ci, details=details)

    return compute


def _no_ngrams(n: int) -> str:
    return f"no text has {n} tokens, so there are no {n}-grams"


SELF_BLEU_MAX_N = 4


def _self_bleu(inputs: MetricInputs) -> MetricValue:
    """n/a where distinct-4 is: with no 4-gram in the corpus, BLEU-4's top order is nltk's smoothing
    constant for every text, and the figure (0.56 for two copies of a 3-word text) measures nothing."""
    if not inputs.lexical.ngram_counts(SELF_BLEU_MAX_N)[1]:
        return _undefined("self_bleu", _no_ngrams(SELF_BLEU_MAX_N), max_n=SELF_BLEU_MAX_N)
    result = inputs.lexical.self_bleu(max_n=SELF_BLEU_MAX_N, sample=inputs.self_bleu_sample, seed=inputs.seed)
    return _value("self_bleu", result.value, details={
        "n_hypotheses": result.n_hypotheses,
        "sampled": result.sampled,
        "max_n": result.max_n,
        "smoothing": "nltk method1 (epsilon 0.1)",
    })


def _compression(inputs: MetricInputs) -> MetricValue:
    stream, rng, bootstrap = inputs.lexical, inputs.rng, inputs.bootstrap
    value = stream.compression_ratio()
    raw_bytes = stream.raw_bytes
    details: dict[str, Any] = {"gzip_level": lexical.GZIP_LEVEL, "raw_bytes": raw_bytes}
    ci = None
    groups = min(JACKKNIFE_GROUPS, stream.n_texts)
    if bootstrap > 0 and (few := too_few(stream.n_texts)):
        details["ci_skipped"] = few
    elif bootstrap > 0 and groups > 1:
        if raw_bytes * groups <= COMPRESSION_CI_MAX_BYTES:
            texts = stream.kept_texts
            assert texts is not None  # kept while under the same budget (keep_for_interval)
            # Random groups, text order kept: gzip's 32 KiB window makes the figure order-dependent.
            group_of = rng.permutation(len(texts)) % groups
            leave_out = np.array(
                [
                    lexical.compression_ratio(
                        [t for t, g in zip(texts, group_of.tolist(), strict=True) if g != k]
                    )
                    for k in range(groups)
                ]
            )
            ci = _jackknife_ci(value, leave_out)
            details["ci_method"] = f"delete-a-group jackknife, {groups} random groups, normal"
        else:
            details["ci_skipped"] = (
                f"interval would gzip {raw_bytes * groups} bytes (> {COMPRESSION_CI_MAX_BYTES})"
            )
    return _value("compression_ratio", value, ci95=ci, details=details)


def _mean_cosine(inputs: MetricInputs) -> MetricValue:
    embeddings, bootstrap = inputs.embeddings, inputs.bootstrap
    assert embeddings is not None
    value = semantic.mean_pairwise_cosine(embeddings)
    ci = None
    details: dict[str, Any] = {"n": int(embeddings.shape[0]), "dim": int(embeddings.shape[1])}
    if bootstrap > 0 and (few := too_few(int(embeddings.shape[0]))):
        details["ci_skipped"] = few
    elif bootstrap > 0:
        reps = semantic.mean_pairwise_cosine_bootstrap(embeddings, replicates=bootstrap, rng=inputs.rng)
        ci = _percentile_ci(reps)
        details["ci_method"] = f"bootstrap percentile, {bootstrap} replicates, self-pairs excluded"
    return _value("embedding_mean_cosine", value, ci95=ci, details=details)


def _vendi(inputs: MetricInputs) -> MetricValue:
    embeddings = inputs.embeddings
    assert embeddings is not None
    return _value("vendi", semantic.vendi_score(embeddings),
                  details={"q": 1, "kernel": "cosine", "max_possible": int(min(embeddings.shape))})


VENDI_SUBSETS = 20


def _vendi_normalized(inputs: MetricInputs) -> MetricValue:
    embeddings = inputs.embeddings
    assert embeddings is not None
    size = inputs.reference_size
    details: dict[str, Any] = {"q": 1, "kernel": "cosine", "reference_size": size, "n": int(embeddings.shape[0])}
    try:
        value, spread = semantic.vendi_normalized(embeddings, size, subsets=VENDI_SUBSETS, seed=inputs.seed)
    except ValueError as exc:
        return _undefined("vendi_normalized", str(exc), **details)
    subsets = 1 if embeddings.shape[0] == size else VENDI_SUBSETS
    return _value("vendi_normalized", value, details={**details, "subsets": subsets, "subset_sd": spread})


FAISS_WARNING = re.compile(r"^WARNING clustering \d+ points to \d+ centroids")
"""faiss's k-means, which MAUVE quantises with, prints this (C++, to fd 2) whenever it has fewer than 39
points per centroid; MAUVE's auto rule asks for about 10 by design, so it says so on every small run."""


def _mauve(inputs: MetricInputs) -> MetricValue:
    from clusterdiv.core.capture import native_stderr

    try:
        with native_stderr(FAISS_WARNING) as said:  # into the report's warnings, not onto the terminal
            value = reference.mauve_score(inputs.reference_embeddings, inputs.embeddings, seed=inputs.seed)
    except ImportError as exc:  # optional dependency: the other reference metrics still count
        return _undefined("mauve", str(exc))
    details: dict[str, Any] = {"seed": inputs.seed, "num_buckets": "auto", "p": "reference", "q": "texts"}
    if said:
        details["warnings"] = [f"mauve: faiss k-means said '{line}': MAUVE quantises both sets into about "
                               "n/10 buckets, fewer points per bucket than faiss asks for, so its value is "
                               "noisy at this size (compare MAUVE only between runs of similar sizes and seed)"
                               for line in said]
    return _value("mauve", value, details=details)


def _knn(name: str) -> MetricCompute:
    """precision/recall share one k-NN computation, density/coverage another."""
    pair = "pr" if name in ("precision", "recall") else "dc"

    def compute(inputs: MetricInputs) -> MetricValue:
        emb, ref = inputs.embeddings, inputs.reference_embeddings
        assert emb is not None and ref is not None
        details = {"k": KNN_K, "n_texts": int(emb.shape[0]), "n_reference": int(ref.shape[0])}
        fn = reference.knn_precision_recall if pair == "pr" else reference.density_coverage
        try:
            result = inputs.shared(f"knn_{pair}", lambda: fn(ref, emb, k=KNN_K))
        except ValueError as exc:
            return _undefined(name, str(exc), **details)
        value = getattr(result, name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return _undefined(name, "undefined", **details)
        return _value(name, value, details=dict(details))

    return compute
def _undefined(name: str, reason: str, **details: Any) -> MetricValue:
    return _BY_NAME[name].undefined(reason, **details)


def _value(name: str, value: float, **kwargs: Any) -> MetricValue:
    return _BY_NAME[name].value(value, **kwargs)


BUILTINS: list[MetricSpec] = [
    *(MetricSpec(f"distinct_{n}", "lexical",
                 f"unique {n}-grams / all {n}-grams over the corpus (higher = more varied wording)",
                 MORE_DIVERSE, _distinct(n), value_range=SHARE) for n in DISTINCT_ORDERS),
    MetricSpec("self_bleu", "lexical", "mean BLEU-4 of each text against all others (higher = texts repeat each other)",
               LESS_DIVERSE, _self_bleu, value_range=SHARE),
    MetricSpec("compression_ratio", "lexical", "gzip size / raw size of the joined corpus (lower = more redundant)",
               MORE_DIVERSE, _compression, value_range=(0.0, math.inf)),  # gzip's header: > 1 when tiny
    MetricSpec("embedding_mean_cosine", "semantic",
               "mean cosine similarity of all embedding pairs (higher = less diverse)", LESS_DIVERSE, _mean_cosine,
               value_range=(-1.0, 1.0)),
    MetricSpec("vendi", "semantic", "effective number of distinct examples, cosine kernel (higher = more diverse)",
               MORE_DIVERSE, _vendi, value_range=(1.0, math.inf)),  # 1: all rows alike
    MetricSpec("vendi_normalized", "semantic",
               "Vendi per reference-size examples: the mean over seeded subsets of that size, / the size "
               "(comparable across batch sizes; higher = more diverse)", MORE_DIVERSE, _vendi_normalized,
               value_range=SHARE),
    MetricSpec("mauve", "reference", "distributional closeness to the reference set, 0..1 (higher = closer)",
               MORE_DIVERSE, _mauve, value_range=SHARE),
    MetricSpec("precision", "reference", "share of texts inside the reference manifold, k-NN (higher = more faithful)",
               MORE_DIVERSE, _knn("precision"), value_range=SHARE),
    MetricSpec("recall", "reference", "share of the reference manifold reached by the texts, k-NN (higher = more coverage)",
               MORE_DIVERSE, _knn("recall"), value_range=SHARE),
    MetricSpec("density", "reference", "how densely texts sit among reference neighbours (~1 = like the reference)",
               NO_DIRECTION, _knn("density"), value_range=(0.0, math.inf)),
    MetricSpec("coverage", "reference", "share of reference examples with a text nearby (higher = more coverage)",
               MORE_DIVERSE, _knn("coverage"), value_range=SHARE),
]


def _percentile_ci(replicates: np.ndarray) -> tuple[float, float] | None:
    finite = replicates[np.isfinite(replicates)]
    if finite.size < 2:
        return None
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def _jackknife_ci(
    estimate: float, leave_out: np.ndarray, *, bounds: tuple[float, float] | None = None
) -> tuple[float, float] | None:
    """Normal 95% interval estimate +- 1.96 se, se from delete-one (or delete-a-group) values.

    se^2 = (g-1)/g * sum (v_j - mean v)^2 over the g leave-out values (Efron & Tibshirani 1993).
    """
    return _jackknife_ci_parts(estimate, [leave_out], bounds=bounds)


def _jackknife_ci_parts(
    estimate: float, parts: Iterable[np.ndarray], *, bounds: tuple[float, float] | None = None
) -> tuple[float, float] | None:
    """:func:`_jackknife_ci` over leave-out values that arrive in parts (a stream's chunks).

    The parts' counts, means and sums of squared deviations are merged (Chan, Golub & LeVeque
    1979), so the values never need to be held together; one part gives exactly the one-array sums.
    """
    g, mean, m2 = 0, 0.0, 0.0
    for part in parts:
        k = int(part.shape[0])
        if not k:
            continue
        part_mean = float(part.mean())
        part_m2 = float(np.sum((part - part_mean) ** 2))
        if not g:
            g, mean, m2 = k, part_mean, part_m2
            continue
        delta = part_mean - mean
        total = g + k
        mean += delta * k / total
        m2 += part_m2 + delta * delta * g * k / total
        g = total
    if g < 2:
        return None
    se = math.sqrt((g - 1) / g * m2)
    lo, hi = estimate - Z95 * se, estimate + Z95 * se
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return lo, hi

_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in BUILTINS}
