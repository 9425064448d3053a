"""Names for modes that cannot mislead: the mode's distinctive words and its most central member.

A mode id ("mode 7") means nothing to a reader, and an LLM name can be worse than nothing: the bundled
135M model called a hotel-booking mode "hotel reviews" and a timezone mode "dumbbell". A name here is
extractive and deterministic instead, so every word of it occurs in the mode's own members:

* terms: the top `TERMS` words of the mode by class-based TF-IDF (c-TF-IDF, as BERTopic names
  topics): the members' texts are joined into one document per mode (noise points form one more
  document, as contrast only), words are counted with scikit-learn's `CountVectorizer` (English stop
  words dropped), each mode's counts are L1-normalised to term frequencies and weighed by
  `log(1 + A / f_t)`, A the average number of words per mode and f_t the word's count over all modes.
  A word frequent in this mode and rare in the others ranks first; ties go alphabetically.
* example: the member closest to the mode's centroid (cosine; ties by id, then position).

`ModeName.name` is the terms joined by ", ", or, when the mode has no word left after stop words,
its central example clipped: never an empty or invented name. The same function names the modes of
every command (`ModeSpace.names`), so the report's coverage line, its tables, `compare`'s chart,
`seeds`, `--assignments` and the explorer call a mode by one name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clusterdiv.modes.cluster import NOISE

TERMS = 3  # distinctive words per name: enough to tell neighbours apart, short enough for a table cell
EXAMPLE_CHARS = 80  # the central example as shown beside a name
NAME_CHARS = 40  # a name made of the example alone (a mode of stop words only)


@dataclass(frozen=True)
class ModeName:
    """The extractive name of one mode."""

    cluster_id: int
    terms: tuple[str, ...]
    example: str  # the most central member's text, clipped to EXAMPLE_CHARS
    example_id: str

    @property
    def name(self) -> str:
        if self.terms:
            return ", ".join(self.terms)
        return clip(self.example, NAME_CHARS)

    @property
    def description(self) -> str:
        what = f"distinctive words (c-TF-IDF against the other modes): {', '.join(self.terms)}; " if self.terms else ""
        return f'{what}most central example: "{self.example}"'


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def mode_centroids(labels: Sequence[int], vectors: np.ndarray) -> dict[int, np.ndarray]:
    """Unit-norm mean vector per mode (noise has none: it is not a mode with a centre)."""
    by_mode: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        if label != NOISE:
            by_mode.setdefault(int(label), []).append(i)
    return {c: _unit(vectors[idx].mean(axis=0)) for c, idx in sorted(by_mode.items())}


def central_order(labels: Sequence[int], vectors: np.ndarray, ids: Sequence[str],
                  centres: dict[int, np.ndarray] | None = None) -> dict[int, list[int]]:
    """Member positions per mode, most central first (cosine to the centroid; ties by id, position)."""
    centres = centres if centres is not None else mode_centroids(labels, vectors)
    out: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        if label != NOISE:
            out.setdefault(int(label), []).append(i)
    for c, idx in out.items():
        sims = vectors[idx] @ centres[c]
        order = sorted(range(len(idx)), key=lambda k: (-round(float(sims[k]), 6), ids[idx[k]], idx[k]))
        out[c] = [idx[k] for k in order]
    return out


def distinctive_terms(texts: Sequence[str], labels: Sequence[int], *, top: int = TERMS) -> dict[int, tuple[str, ...]]:
    """The `top` c-TF-IDF words of every mode (noise excluded; see the module docstring)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    classes = sorted({int(label) for label in labels})
    docs = {c: [] for c in classes}
    for text, label in zip(texts, labels, strict=True):
        docs[int(label)].append(text)
    try:
        counts = CountVectorizer(stop_words="english").fit(texts)
    except ValueError:  # no word at all outside the stop words
        return {c: () for c in classes if c != NOISE}
    vocabulary = counts.get_feature_names_out()
    X = counts.transform([" ".join(docs[c]) for c in classes]).astype(np.float64)
    per_class = np.asarray(X.sum(axis=0)).ravel()
    average = X.sum() / len(classes)
    idf = np.log(1.0 + average / np.maximum(per_class, 1.0))
    weights = normalize(X, norm="l1", axis=1).multiply(idf).tocsr()
    out: dict[int, tuple[str, ...]] = {}
    for row, c in enumerate(classes):
        if c == NOISE:
            continue
        start, end = weights.indptr[row], weights.indptr[row + 1]
        cols, vals = weights.indices[start:end], weights.data[start:end]
        ranked = sorted(zip(vals.tolist(), vocabulary[cols].tolist(), strict=True), key=lambda t: (-round(t[0], 12), t[1]))
        out[c] = tuple(term for value, term in ranked[:top] if value > 0)
    return out


def mode_names(texts: Sequence[str], labels: Sequence[int], vectors: np.ndarray, ids: Sequence[str], *,
               top: int = TERMS) -> dict[int, ModeName]:
    """One ModeName per mode (noise excluded), by mode id; rows of `texts`, `labels`, `vectors` and `ids` align."""
    if not len(labels):
        return {}
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(labels), -1)
    terms = distinctive_terms(texts, labels, top=top)
    central = central_order(labels, vectors, ids)
    return {c: ModeName(cluster_id=c, terms=terms.get(c, ()), example=clip(texts[order[0]], EXAMPLE_CHARS),
                        example_id=str(ids[order[0]]))
            for c, order in sorted(central.items())}


__all__ = ["ModeName", "central_order", "distinctive_terms", "mode_centroids", "mode_names"]
