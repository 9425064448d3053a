"""Which representation of an example should the modes be built from? Scored on cached vectors.

The headline clusters one vector per example. This module scores every candidate way of making
that vector (a *view*) at every threshold of one grid, on every corpus, without calling a model:

* `text`: the raw text's embedding (no LLM);
* `criteria`: the embedding of the LLM's criteria (`intent: ...; topic: ...`), failed examples left out;
* `criteria+gate`: the same, with degenerate answers (one-word or copied intents) replaced by the
  text view for that example (counted);
* `hybrid@w`: criteria and text vectors concatenated with weights w (text) and 1-w (criteria), so
  cosine distance is w * text distance + (1 - w) * criteria distance; with the gate on.

One average-linkage tree per (corpus, view) is cut at every threshold of `GRID`, so a threshold
sweep costs one clustering. A *multi-resolution* score (the mean normalised score over a range of
thresholds, which does not hinge on one cut) is read off the same cuts.

`select_lodo` then chooses settings the way the report must: for each source held out, the best
setting on the other sources, scored on the held-out one.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

GRID: tuple[float, ...] = tuple(round(0.10 + 0.05 * i, 2) for i in range(17))  # 0.10 .. 0.90
HYBRID_WEIGHTS: tuple[float, ...] = (0.25, 0.5, 0.75)
# Ranges for the multi-resolution score: every [lo, hi] on a 0.1 step inside the grid.
RANGES: tuple[tuple[float, float], ...] = tuple(
    (round(lo, 1), round(hi, 1)) for lo, hi in itertools.combinations([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 2)
)
TUNING_FAMILIES = ("intent_count", "head_collapse", "ngram_mislead", "contamination")


def views_for(has_criteria: bool) -> list[str]:
    if not has_criteria:
        return ["text"]
    return ["text", "criteria", "criteria+gate", *(f"hybrid@{w}" for w in HYBRID_WEIGHTS)]


@dataclass
class ViewVectors:
    """Per text: raw-text vector, criteria vector (None when extraction failed), degenerate flag."""

    text: dict[str, np.ndarray]
    criteria: dict[str, np.ndarray | None]
    degenerate: dict[str, bool]


def _cosine_condensed(X: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import squareform

    S = np.clip(X @ X.T, -1.0, 1.0)
    D = 1.0 - S
    np.fill_diagonal(D, 0.0)
    return squareform(np.maximum(D, 0.0), checks=False)


def view_distances(texts: Sequence[str], view: str, vv: ViewVectors) -> tuple[np.ndarray, list[str], int]:
    """Condensed cosine distances of the texts in one view, the texts kept, and how many fell back."""
    if view == "text":
        X = np.vstack([vv.text[t] for t in texts])
        return _cosine_condensed(X), list(texts), 0
    if view == "criteria":
        kept = [t for t in texts if vv.criteria.get(t) is not None]
        X = np.vstack([vv.criteria[t] for t in kept])
        return _cosine_condensed(X), kept, 0
    gate_vectors = []
    fallback = 0
    for t in texts:
        c = vv.criteria.get(t)
        if c is None or vv.degenerate.get(t, False):
            gate_vectors.append(vv.text[t])
            fallback += 1
        else:
            gate_vectors.append(c)
    C = np.vstack(gate_vectors)
    if view == "criteria+gate":
        return _cosine_condensed(C), list(texts), fallback
    w = float(view.split("@")[1])
    T = np.vstack([vv.text[t] for t in texts])
    return w * _cosine_condensed(T) + (1 - w) * _cosine_condensed(C), list(texts), fallback


def cut_scores(condensed: np.ndarray, n: int, *, reference_size: int) -> tuple[list[float], list[np.ndarray]]:
    """Normalised score and labels at every threshold of GRID from one average-linkage tree."""
    from scipy.cluster.hierarchy import fcluster, linkage

    from clusterdiv.modes.scoring import expected_richness, mode_counts

    if n < 2:
        return [1.0 / reference_size * expected_richness(np.array([1]), reference_size)] * len(GRID), \
            [np.zeros(n, dtype=int)] * len(GRID)
    Z = linkage(condensed, method="average")
    scores, labels = [], []
    for t in GRID:
        lab = fcluster(Z, t=t, criterion="distance")
        labels.append(lab)
        scores.append(expected_richness(mode_counts(lab.tolist()), reference_size) / reference_size)
    return scores, labels


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan") if len(set(y)) < 2 else 0.0
    return float(spearmanr(x, y).statistic)


# ---------------------------------------------------------------- settings and their figures


def settings_for(view: str) -> list[str]:
    """Every setting of a view: one threshold (`t=0.45`) or a multi-resolution range (`multi=0.3-0.7`)."""
    return [f"t={t:.2f}" for t in GRID] + [f"multi={lo:.1f}-{hi:.1f}" for lo, hi in RANGES]


def setting_value(scores: Sequence[float], setting: str) -> float:
    kind, _, arg = setting.partition("=")
    if kind == "t":
        return scores[GRID.index(round(float(arg), 2))]
    lo, hi = (float(x) for x in arg.split("-"))
    idx = [i for i, t in enumerate(GRID) if lo - 1e-9 <= t <= hi + 1e-9]
    return statistics.fmean(scores[i] for i in idx)


def family_spearman(rows: list[dict[str, Any]], value_of) -> dict[str, float]:
    """family -> mean over repetitions of sign-corrected Spearman of value_of(row) with the truth."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["family"], r["rep"])].append(r)
    per_family: dict[str, list[float]] = defaultdict(list)
    for (family, _rep), group in groups.items():
        values = [value_of(g) for g in group]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            continue
        rho = spearman(values, [g["truth"] for g in group])
        if not math.isnan(rho):
            per_family[family].append(rho)
    return {f: statistics.fmean(v) for f, v in per_family.items() if v}


def objective(fam: dict[str, float], families: Sequence[str] = TUNING_FAMILIES) -> float:
    vals = [fam[f] for f in families if f in fam]
    return statistics.fmean(vals) if vals else float("nan")


def select_lodo(results: dict[str, list[dict[str, Any]]], source_of: dict[str, str], view: str,
                settings: Sequence[str], *, keep=None, families: Sequence[str] = TUNING_FAMILIES) -> dict[str, Any]:
    """Leave-one-source-out choice of a view's setting, with in- and out-of-sample figures.

    `results`: dataset -> rows, each row holding `views[view]` = scores over GRID. For every source
    (a dataset family such as CLINC150 with its domains), the setting with the best mean objective
    over the datasets of *other* sources is chosen and scored on that source's datasets. The
    in-sample choice (best over all datasets) is reported beside it, never instead of it.
    """
    kept = {d: [r for r in rows if view in r["views"] and (keep is None or keep(r))] for d, rows in results.items()}
    datasets = [d for d, rows in kept.items() if rows]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for d in datasets:
        table[d] = {}
        for s in settings:
            table[d][s] = family_spearman(kept[d], lambda r, s=s: setting_value(r["views"][view]["scores"], s))

    def mean_obj(ds: Sequence[str], s: str) -> float:
        vals = [objective(table[d][s], families) for d in ds]
        vals = [v for v in vals if not math.isnan(v)]
        return statistics.fmean(vals) if vals else float("-inf")

    def best(ds: Sequence[str]) -> str:
        # ties (frequent on coarse Spearman) go to the first setting in grid order: deterministic
        return max(settings, key=lambda s: (round(mean_obj(ds, s), 6), -settings.index(s)))

    sources = sorted({source_of[d] for d in datasets})
    folds = {}
    out_of_sample: dict[str, dict[str, Any]] = {}
    for src in sources:
        train = [d for d in datasets if source_of[d] != src]
        if not train:
            continue
        chosen = best(train)
        folds[src] = {"chosen": chosen, "train_datasets": train, "train_objective": mean_obj(train, chosen)}
        for d in datasets:
            if source_of[d] == src:
                out_of_sample[d] = {"setting": chosen, "families": table[d][chosen]}
    in_sample_choice = best(datasets)
    return {
        "view": view,
        "in_sample": {"setting": in_sample_choice,
                      "per_dataset": {d: table[d][in_sample_choice] for d in datasets}},
        "folds": folds,
        "out_of_sample": out_of_sample,
        "table": table,
    }
