"""Coverage by label: which of the reference's own labels a batch lacks, through a classifier fitted on it.

Why beside the modes. A mode is a cut of the joint clustering, and one cut cannot be the domain's grain
everywhere: near-neighbour intents share a mode, and an intent the batch lost hides inside a mode a kept
neighbour fills (eval/results/seeds_within.md; eval/results/resolution.md shows no unsupervised cut that
fits every domain). When the real data carries labels, the team's own unit is known, and a classifier
fitted on the reference's vectors gives every batch example a real label: "intent X: 0 of an expected 5"
is then a statement about X, at X's grain, with no cut at all.

* The classifier is chosen by evidence on the reference alone: k-NN (cosine, distance-weighted) and
  logistic regression, each scored by out-of-fold macro F1 under stratified k-fold; the better wins (k-NN
  on a tie: nothing to fit). Its score is reported: a label set the embedding cannot tell apart gives a low
  F1, and the reader sees it.
* The null uses the classifier's view of both sets. The reference side of each label's test is the
  label's out-of-fold prediction count, not its true count: a classifier that confuses two neighbours
  moves the same share of examples between them in the batch and in the reference, so confusion alone
  flags nothing, while a label the batch truly lost keeps only the few examples misassigned to it.
* The test and the flags are the modes' (`modes.shares.cluster_shares`, one-sided Fisher exact per label,
  Benjamini-Hochberg at `alpha`, labels too small to test `untestable`), so a flag means the same thing in
  both places.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clusterdiv.core.errors import InputError
from clusterdiv.reports.sections import LabelCoverage, LabelShare

CANDIDATES = ("knn", "logistic")
MAX_FOLDS = 5
KNN_K = 10
LOW_CONFIDENCE = 0.5
DEFAULT_MIN_CONFIDENCE = 0.5
"""Batch and reference assignments below this top-class probability count for no label (see `label_coverage`);
chosen on eval/seeds_within_eval.py's five sources (its LOSO figures are the out-of-sample ones)."""


def _classifier(name: str, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    if name == "knn":  # unit vectors: euclidean order is cosine order
        return KNeighborsClassifier(n_neighbors=KNN_K, weights="distance")
    return LogisticRegression(C=10.0, max_iter=2000, random_state=seed)


def _out_of_fold(name: str, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = int(max(2, min(MAX_FOLDS, np.bincount(y).max())))
    with warnings.catch_warnings():  # a label of fewer rows than folds: sklearn warns, the fold still runs
        warnings.simplefilter("ignore")
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        proba = cross_val_predict(_classifier(name, seed), x, y, cv=splitter, method="predict_proba")
    return np.argmax(proba, axis=1), proba.max(axis=1)  # classes are 0..k-1 and every one is in some fold


@dataclass(frozen=True)
class LabelFit:
    """The chosen classifier's answers: what `label_coverage` tests, at any level (fitted once)."""

    names: list[str]
    reference_codes: np.ndarray
    out_of_fold: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    out_of_fold_confidence: np.ndarray
    chosen: str
    scores: dict[str, float]


def fit_labels(batch_vectors: np.ndarray, reference_vectors: np.ndarray, reference_labels: Sequence[str], *,
               label_field: str, seed: int = 0) -> LabelFit:
    """Choose the classifier on the reference (out-of-fold macro F1), fit it, label the batch."""
    from sklearn.metrics import f1_score

    names = sorted(set(reference_labels))
    if len(names) < 2:
        raise InputError(f"coverage by label needs at least 2 labels in the reference's {label_field!r}, "
                         f"found {len(names)}", option="reference-label-field")
    if len(batch_vectors) == 0:
        raise InputError("the batch is empty")
    code = {n: k for k, n in enumerate(names)}
    y = np.array([code[v] for v in reference_labels], dtype=np.int64)
    scores, oof, oof_conf = {}, {}, {}
    for name in CANDIDATES:
        oof[name], oof_conf[name] = _out_of_fold(name, reference_vectors, y, seed)
        scores[name] = float(f1_score(y, oof[name], average="macro"))
    chosen = max(CANDIDATES, key=lambda n: (scores[n], n == "knn"))
    model = _classifier(chosen, seed).fit(reference_vectors, y)
    proba = model.predict_proba(batch_vectors)
    return LabelFit(names=names, reference_codes=y, out_of_fold=oof[chosen],
                    predicted=model.classes_[np.argmax(proba, axis=1)], confidence=proba.max(axis=1),
                    out_of_fold_confidence=oof_conf[chosen],
                    chosen=chosen, scores=scores)


def label_coverage(fit: LabelFit, *, batch_ids: Sequence[str], reference_ids: Sequence[str], label_field: str,
                   alpha: float, per_label: int = 3,
                   min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> LabelCoverage:
    """The `label_coverage` section of a fit at false discovery rate `alpha`: see the module docstring.
    An assignment below `min_confidence` counts for no label, on both sides alike (the reference's by its
    out-of-fold confidence), as a noise point counts for no mode."""
    from clusterdiv.modes.cluster import NOISE
    from clusterdiv.modes.shares import LACKING, cluster_shares, flag_test_text

    names, y, predicted, confidence = fit.names, fit.reference_codes, fit.predicted, fit.confidence
    ids = [*batch_ids, *reference_ids]
    batch_codes = np.where(confidence >= min_confidence, predicted, NOISE)
    ref_codes = np.where(fit.out_of_fold_confidence >= min_confidence, fit.out_of_fold, NOISE)
    rows = cluster_shares([*batch_codes.tolist(), *ref_codes.tolist()],
                          [True] * len(batch_ids) + [False] * len(reference_ids), ids,
                          alpha=alpha, per_cluster=per_label)
    true_count = np.bincount(y, minlength=len(names))
    by_code = {r.cluster_id: r for r in rows}
    out = []
    for k, name in enumerate(names):
        r = by_code.get(k)
        mask = predicted == k
        out.append(LabelShare(
            label=name, reference_count=int(true_count[k]),
            reference_predicted=0 if r is None else r.reference_count,
            batch_count=0 if r is None else r.batch_count,
            expected=(0.0 if r is None else r.reference_share) * len(batch_ids),
            ratio=None if r is None else r.ratio,
            flag="untestable" if r is None or r.flag == "batch_only" else r.flag,
            p_value=None if r is None else r.p_value, q_value=None if r is None else r.q_value,
            mean_confidence=float(confidence[mask].mean()) if mask.any() else None,
            batch_example_ids=[] if r is None else r.batch_example_ids,
            reference_example_ids=[i for i, c in zip(reference_ids, y.tolist(), strict=True) if c == k][:per_label],
        ))
    severity = {"missing": 0, "under": 1, "untestable": 2, "over": 4, "balanced": 3}
    out.sort(key=lambda s: (severity[s.flag], s.batch_count - s.expected, s.label))
    return LabelCoverage(
        label_field=label_field, classifier=fit.chosen, cv_macro_f1=fit.scores[fit.chosen], candidates=fit.scores,
        n_batch=len(batch_ids), n_reference=len(reference_ids), n_labels=len(names), alpha=alpha,
        flag_test=flag_test_text(alpha).replace("per shared mode", "per reference label")
                                       .replace("the modes", "the labels").replace("a mode", "a label"),
        low_confidence=int((confidence < LOW_CONFIDENCE).sum()),
        lacking=[s.label for s in out if s.flag in LACKING],
        untestable=[s.label for s in out if s.flag == "untestable"], labels=out)

