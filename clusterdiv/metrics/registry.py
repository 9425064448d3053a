"""One entry point that computes the selected set metrics and labels each for display.

Why a registry: the CLI, the report and notebooks all need the same names, the same one-line
meanings and the same handling of metrics that are undefined for a given input (one text, no
embeddings). A metric that cannot be computed gets ``value=None`` and the reason in ``details``
instead of failing the whole run, because the other metrics are still worth reporting.

Importing this module and computing lexical metrics never imports torch: embeddings are passed in
as arrays, and the MAUVE package (which imports torch) is imported only when ``mauve`` is computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from clusterdiv.metrics import lexical, reference, semantic
from clusterdiv.metrics.tokenize import tokenize_all

__all__ = [
    "ALL_METRICS",
    "COMPRESSION_CI_MAX_BYTES",
    "MEANINGS",
    "METRIC_GROUPS",
    "MetricValue",
    "compute_set_metrics",
    "resolve_selection",
]

DISTINCT_ORDERS = (1, 2, 3, 4)

METRIC_GROUPS: dict[str, list[str]] = {
    "lexical": [*(f"distinct_{n}" for n in DISTINCT_ORDERS), "self_bleu", "compression_ratio"],
    "semantic": ["embedding_mean_cosine", "vendi"],
    "reference": ["mauve", "precision", "recall", "density", "coverage"],
}
ALL_METRICS: list[str] = [name for names in METRIC_GROUPS.values() for name in names]

MEANINGS: dict[str, str] = {
    **{
        f"distinct_{n}": f"unique {n}-grams / all {n}-grams over the corpus (higher = more varied wording)"
        for n in DISTINCT_ORDERS
    },
    "self_bleu": "mean BLEU-4 of each text against all others (higher = texts repeat each other)",
    "compression_ratio": "gzip size / raw size of the joined corpus (lower = more redundant)",
    "embedding_mean_cosine": "mean cosine similarity of all embedding pairs (higher = less diverse)",
    "vendi": "effective number of distinct examples, cosine kernel (higher = more diverse)",
    "mauve": "distributional closeness to the reference set, 0..1 (higher = closer)",
    "precision": "share of texts inside the reference manifold, k-NN (higher = more faithful)",
    "recall": "share of the reference manifold reached by the texts, k-NN (higher = more coverage)",
    "density": "how densely texts sit among reference neighbours (~1 = like the reference)",
    "coverage": "share of reference examples with a text nearby (higher = more coverage)",
}

JACKKNIFE_GROUPS = 20
"""Groups of the delete-a-group jackknife used for the compression-ratio interval."""

COMPRESSION_CI_MAX_BYTES = 64 * 2**20
"""Most bytes gzip may process for the compression-ratio interval (groups x corpus size). Each
group costs a gzip of most of the corpus, so beyond this the interval is not "cheap" any more: it
is left out and ``details`` says why."""

Z95 = 1.959963984540054  # standard normal 97.5% quantile


KNN_K = 5

MIN_TEXTS_FOR_INTERVAL = 3
"""Below this many texts a jackknife or bootstrap interval is degenerate (often zero-width): it is
left out (``ci95`` None) and ``details["ci_skipped"]`` says why, instead of a misleading 0-width one."""


def _too_few(n: int) -> str | None:
    if n < MIN_TEXTS_FOR_INTERVAL:
        return f"n={n} texts is too few for an interval (needs {MIN_TEXTS_FOR_INTERVAL})"
    return None


class MetricValue(BaseModel):
    """One computed metric, ready for a table row and for JSON output."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: float | None = Field(description="None when the metric is undefined for this input")
    ci95: tuple[float, float] | None = Field(default=None, description="seeded bootstrap 95% interval")
    meaning: str
    details: dict[str, Any] = Field(default_factory=dict)


def resolve_selection(spec: str | Iterable[str] | None) -> set[str]:
    """Metric names from group names and/or metric names (``"lexical,vendi"`` or an iterable).

    ``None`` means every metric. Unknown names raise ``ValueError`` listing the valid ones, so a
    typo in ``--metrics`` is an error rather than an empty table.
    """
    if spec is None:
        return set(ALL_METRICS)
    items = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else [p.strip() for p in spec]
    selected: set[str] = set()
    for item in filter(None, items):
        if item in METRIC_GROUPS:
            selected.update(METRIC_GROUPS[item])
        elif item in MEANINGS:
            selected.add(item)
        else:
            valid = ", ".join([*METRIC_GROUPS, *ALL_METRICS])
            raise ValueError(f"unknown metric or group {item!r}; choose from: {valid}")
    return selected


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
    g = leave_out.shape[0]
    if g < 2:
        return None
    se = math.sqrt((g - 1) / g * float(np.sum((leave_out - leave_out.mean()) ** 2)))
    lo, hi = estimate - Z95 * se, estimate + Z95 * se
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return lo, hi


def _undefined(name: str, reason: str, **details: Any) -> MetricValue:
    return MetricValue(name=name, value=None, meaning=MEANINGS[name], details={"reason": reason, **details})


def _safe(name: str, compute: Callable[[], MetricValue]) -> MetricValue:
    """Run one metric; a ValueError (undefined for this input) becomes value=None with the reason."""
    try:
        return compute()
    except ValueError as exc:
        return _undefined(name, str(exc))


def compute_set_metrics(
    texts: list[str],
    *,
    embeddings: np.ndarray | None = None,
    reference_embeddings: np.ndarray | None = None,
    select: set[str] | None = None,
    seed: int = 0,
    bootstrap: int = 200,
    self_bleu_sample: int | None = None,
) -> dict[str, MetricValue]:
    """Compute the selected set metrics of ``texts`` (all metrics whose inputs are given by default).

    Semantic metrics need ``embeddings`` (one row per text); reference metrics also need
    ``reference_embeddings`` (rows = reference examples, same dimension). A selected metric whose
    input is missing is skipped, not reported as undefined, so "all" means "all that apply".
    ``select`` holds metric names and/or group names of :data:`METRIC_GROUPS`; None selects all.
    Intervals (``ci95``, method in ``details["ci_method"]``): mean cosine gets a seeded bootstrap
    of ``bootstrap`` replicates; distinct-n and compression ratio get jackknife intervals instead,
    because resampling with replacement duplicates texts and duplicates are what those two metrics
    measure (the bootstrap there is biased, see :func:`lexical.distinct_n_leave_one_out`).
    ``bootstrap=0`` turns all intervals off. Self-BLEU, Vendi and reference metrics get none
    (not cheap). Order of the result follows :data:`ALL_METRICS`.
    """
    wanted = set(ALL_METRICS) if select is None else resolve_selection(select)
    if embeddings is not None:
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
            raise ValueError(
                f"embeddings must have one row per text: {len(texts)} texts, shape {embeddings.shape}"
            )
    rng = np.random.default_rng(seed)
    out: dict[str, MetricValue] = {}

    lexical_wanted = [m for m in METRIC_GROUPS["lexical"] if m in wanted]
    if lexical_wanted:
        out.update(_lexical_metrics(texts, lexical_wanted, rng, bootstrap, self_bleu_sample, seed))
    if embeddings is not None:
        out.update(_semantic_metrics(embeddings, wanted, rng, bootstrap))
        if reference_embeddings is not None:
            out.update(_reference_metrics(embeddings, np.asarray(reference_embeddings), wanted, seed))
    return {name: out[name] for name in ALL_METRICS if name in out}


def _lexical_metrics(
    texts: list[str],
    wanted: list[str],
    rng: np.random.Generator,
    bootstrap: int,
    self_bleu_sample: int | None,
    seed: int,
) -> dict[str, MetricValue]:
    corpus = lexical.EncodedCorpus.from_token_lists(tokenize_all(texts))
    out: dict[str, MetricValue] = {}
    for n in DISTINCT_ORDERS:
        name = f"distinct_{n}"
        if name not in wanted:
            continue
        table = corpus.table(n)
        details: dict[str, Any] = {"unique_ngrams": table.n_unique, "total_ngrams": int(table.gram.shape[0])}
        if not table.gram.shape[0]:
            out[name] = _undefined(name, f"no text has {n} tokens, so there are no {n}-grams", **details)
            continue
        value = lexical.distinct_n(corpus, n)
        ci = None
        if bootstrap > 0 and (few := _too_few(corpus.n_texts)):
            details["ci_skipped"] = few
        elif bootstrap > 0 and corpus.n_texts > 1:
            loo = lexical.distinct_n_leave_one_out(corpus, n)
            ci = _jackknife_ci(value, loo, bounds=(0.0, 1.0))
            details["ci_method"] = "leave-one-text-out jackknife, normal"
        out[name] = MetricValue(name=name, value=value, ci95=ci, meaning=MEANINGS[name], details=details)
    if "self_bleu" in wanted:

        def _self_bleu() -> MetricValue:
            result = lexical.self_bleu(corpus, sample=self_bleu_sample, seed=seed)
            return MetricValue(
                name="self_bleu",
                value=result.value,
                meaning=MEANINGS["self_bleu"],
                details={
                    "n_hypotheses": result.n_hypotheses,
                    "sampled": result.sampled,
                    "max_n": result.max_n,
                    "smoothing": "nltk method1 (epsilon 0.1)",
                },
            )

        out["self_bleu"] = _safe("self_bleu", _self_bleu)
    if "compression_ratio" in wanted:
        out["compression_ratio"] = _safe("compression_ratio", lambda: _compression(texts, rng, bootstrap))
    return out


def _compression(texts: list[str], rng: np.random.Generator, bootstrap: int) -> MetricValue:
    value = lexical.compression_ratio(texts)
    raw_bytes = len("\n".join(texts).encode("utf-8"))
    details: dict[str, Any] = {"gzip_level": lexical.GZIP_LEVEL, "raw_bytes": raw_bytes}
    ci = None
    groups = min(JACKKNIFE_GROUPS, len(texts))
    if bootstrap > 0 and (few := _too_few(len(texts))):
        details["ci_skipped"] = few
    elif bootstrap > 0 and groups > 1:
        if raw_bytes * groups <= COMPRESSION_CI_MAX_BYTES:
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
    return MetricValue(
        name="compression_ratio", value=value, ci95=ci, meaning=MEANINGS["compression_ratio"], details=details
    )


def _semantic_metrics(
    embeddings: np.ndarray, wanted: set[str], rng: np.random.Generator, bootstrap: int
) -> dict[str, MetricValue]:
    out: dict[str, MetricValue] = {}
    if "embedding_mean_cosine" in wanted:

        def _cosine() -> MetricValue:
            value = semantic.mean_pairwise_cosine(embeddings)
            ci = None
            details: dict[str, Any] = {"n": int(embeddings.shape[0]), "dim": int(embeddings.shape[1])}
            if bootstrap > 0 and (few := _too_few(int(embeddings.shape[0]))):
                details["ci_skipped"] = few
            elif bootstrap > 0:
                reps = semantic.mean_pairwise_cosine_bootstrap(embeddings, replicates=bootstrap, rng=rng)
                ci = _percentile_ci(reps)
                details["ci_method"] = f"bootstrap percentile, {bootstrap} replicates, self-pairs excluded"
            return MetricValue(
                name="embedding_mean_cosine",
                value=value,
                ci95=ci,
                meaning=MEANINGS["embedding_mean_cosine"],
                details=details,
            )

        out["embedding_mean_cosine"] = _safe("embedding_mean_cosine", _cosine)
    if "vendi" in wanted:
        out["vendi"] = _safe(
            "vendi",
            lambda: MetricValue(
                name="vendi",
                value=semantic.vendi_score(embeddings),
                meaning=MEANINGS["vendi"],
                details={"q": 1, "kernel": "cosine", "max_possible": int(min(embeddings.shape))},
            ),
        )
    return out


def _reference_metrics(
    embeddings: np.ndarray, ref: np.ndarray, wanted: set[str], seed: int
) -> dict[str, MetricValue]:
    out: dict[str, MetricValue] = {}
    if "mauve" in wanted:
        try:
            out["mauve"] = _safe(
                "mauve",
                lambda: MetricValue(
                    name="mauve",
                    value=reference.mauve_score(ref, embeddings, seed=seed),
                    meaning=MEANINGS["mauve"],
                    details={"seed": seed, "num_buckets": "auto", "p": "reference", "q": "texts"},
                ),
            )
        except ImportError as exc:  # optional dependency: the other reference metrics still count
            out["mauve"] = _undefined("mauve", str(exc))
    knn_details = {"k": KNN_K, "n_texts": int(embeddings.shape[0]), "n_reference": int(ref.shape[0])}
    if wanted & {"precision", "recall"}:
        try:
            pr = reference.knn_precision_recall(ref, embeddings, k=KNN_K)
            values: dict[str, float | None] = {"precision": pr.precision, "recall": pr.recall}
            reason = None
        except ValueError as exc:
            values, reason = {"precision": None, "recall": None}, str(exc)
        for name in ("precision", "recall"):
            if name in wanted:
                out[name] = _metric_or_undefined(name, values[name], reason, knn_details)
    if wanted & {"density", "coverage"}:
        try:
            dc = reference.density_coverage(ref, embeddings, k=KNN_K)
            values = {"density": dc.density, "coverage": dc.coverage}
            reason = None
        except ValueError as exc:
            values, reason = {"density": None, "coverage": None}, str(exc)
        for name in ("density", "coverage"):
            if name in wanted:
                out[name] = _metric_or_undefined(name, values[name], reason, knn_details)
    return out


def _metric_or_undefined(
    name: str, value: float | None, reason: str | None, details: dict[str, Any]
) -> MetricValue:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _undefined(name, reason or "undefined", **details)
    return MetricValue(name=name, value=value, meaning=MEANINGS[name], details=dict(details))
