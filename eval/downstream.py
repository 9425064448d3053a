"""Downstream utility: does a higher diversity score mean a model trained on the batch can do more?

    python -m eval.downstream --data ../shared/data --out eval/results/
    python -m eval.downstream --from-json eval/results/downstream.json   # re-render DOWNSTREAM.md

For every controlled corpus of the validation families (eval/corpora.py), one fixed, seeded, cheap
classifier (logistic regression on frozen MiniLM embeddings, through clusterdiv's own embedding stage
and cache) is trained on the corpus (labels = gold intents) and tested on the dataset's real held-out
split, which covers every intent. Macro recall counts an intent the corpus never shows as recall 0,
so a batch that lost its tail intents is penalised the way a trained model would be.

Each corpus is also scored with the default headline (raw-text representation, average-linkage at
cosine distance 0.65, normalised score at reference size 100: what `clusterdiv score` does by
default) and with every reference-free baseline; the figures are the Spearman and Kendall
correlations of each metric (sign-corrected) with downstream macro recall, per dataset and pooled,
with bootstrap intervals over corpora.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_CACHE = Path("eval/results/cache")

# ---------------------------------------------------------------- the classifier

_EMBEDDER = None


def _embedder():
    global _EMBEDDER
    if _EMBEDDER is None:
        from clusterdiv.embed import Embedder

        _EMBEDDER = Embedder()
    return _EMBEDDER


def _as_cache(cache: Any):
    """A ModelCache: the one given, one opened at a path, or the eval cache (fixed, so reruns are free)."""
    from clusterdiv.cache import ModelCache

    if isinstance(cache, ModelCache):
        return cache
    return ModelCache(Path(cache) if cache is not None else DEFAULT_CACHE)


def embed(texts: Sequence[str], *, cache: Any = None) -> np.ndarray:
    """MiniLM vectors of texts through clusterdiv's embedding stage (L2-normalised, cached per text)."""
    from clusterdiv.embed import embed_texts

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return embed_texts(list(texts), model=_embedder(), cache=_as_cache(cache))


def downstream_utility(train_texts: list[str], train_labels: list[str], test_texts: list[str],
                       test_labels: list[str], *, tail_labels: set[str] | None = None, seed: int = 0,
                       cache: Any = None, vectors: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Train a seeded logistic regression on frozen MiniLM vectors of the batch; test on real data.

    Returns `accuracy` (share of test examples right), `macro_recall` (mean recall over every intent
    in the *test* labels: an intent the batch never shows has recall 0), `tail_recall` (the same mean
    over `tail_labels`; NaN when none is given), `train_intents` and `test_intents_covered` (how many
    test intents the batch shows). A batch with a single label predicts that label everywhere; an
    empty batch predicts nothing (all zero). `vectors` (text -> vector) skips the embedding stage for
    texts already embedded (the study embeds every text once).
    """
    if len(train_texts) != len(train_labels) or len(test_texts) != len(test_labels):
        raise ValueError("texts and labels must have the same length")
    test_intents = sorted(set(test_labels))
    train_set = set(train_labels)
    if not test_texts:
        raise ValueError("the test split is empty")

    def vecs(texts: Sequence[str]) -> np.ndarray:
        if vectors is not None and all(t in vectors for t in texts):
            return np.vstack([vectors[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)
        return embed(texts, cache=cache)

    if not train_texts:
        pred = np.array([""] * len(test_texts), dtype=object)
    elif len(train_set) == 1:
        pred = np.array([train_labels[0]] * len(test_texts), dtype=object)
    else:
        from sklearn.linear_model import LogisticRegression

        X = vecs(train_texts).astype(np.float64)
        clf = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
        clf.fit(X, np.asarray(train_labels, dtype=object))
        pred = clf.predict(vecs(test_texts).astype(np.float64))
    gold = np.asarray(test_labels, dtype=object)
    correct = pred == gold
    recall = {i: float(correct[gold == i].mean()) for i in test_intents}
    tails = sorted(set(tail_labels or ()) & set(test_intents))
    return {
        "accuracy": float(correct.mean()),
        "macro_recall": float(statistics.fmean(recall.values())),
        "tail_recall": float(statistics.fmean(recall[i] for i in tails)) if tails else float("nan"),
        "train_intents": float(len(train_set)),
        "test_intents_covered": float(len(train_set & set(test_intents))),
    }
