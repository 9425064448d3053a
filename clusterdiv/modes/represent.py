"""Stage: the vector each example is clustered by (its *representation*).

The modes are clusters of one vector per example, and which vector that is decides what the score
can see. Three representations exist:

* `text`: the embedding of the example's own text. No LLM call.
* `criteria`: the embedding of the LLM's criteria (`intent: ...; topic: ...`). Abstracts away
  wording, so paraphrases of one request fall into one mode, but only as well as the model labels:
  a 135M model collapses fine-grained requests into generic labels ("intent: error").
* `hybrid`: both, concatenated with weights `text_weight` and `1 - text_weight`, so the cosine
  distance of two examples is the weighted mean of their text and criteria distances. An example
  whose extraction failed or whose answer is degenerate (see `degenerate_reason`) keeps its text
  vector in the criteria half, and is counted in the report.

Which one is the default, and at what clustering threshold, is chosen by the held-out validation
in eval/RESULTS.md (leave-one-source-out over CLINC150, HWU64 and HINT3, with single-domain
datasets), never by figures on the data the settings were tuned on.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.progress import NullProgress, ProgressReporter
from clusterdiv.core.records import (
    EmbeddedExample,
    Example,
    Extraction,
    RepresentationInfo,
    RepresentationKind,
)
from clusterdiv.modes.embed import Embedder, embed_texts

# Chosen by eval/RESULTS.md ("Choosing the representation"); each kind has its own threshold because
# distances in the text space and in the criteria space are not on the same scale.
# The rule: the default must never rank worse than raw-text clustering on any held-out dataset. With
# the bundled 135M model no LLM representation meets it (hybrid came closest, and fell behind on
# HINT3 powerplay11), and raw text also gave the best agreement with gold intents, at no LLM cost.
DEFAULT_KIND: RepresentationKind = "text"
DEFAULT_THRESHOLDS: dict[str, float] = {"text": 0.65, "criteria": 0.15, "hybrid": 0.70}
DEFAULT_TEXT_WEIGHT = 0.75

# Two-word answers that say nothing about the request; one-word answers are caught by length.
_GENERIC = {
    "ask question", "ask a question", "do not do", "get help", "get information", "make request",
    "make a request", "need help", "other request", "general question", "no intent", "unknown intent",
}
_WORD = re.compile(r"[a-z0-9']+")


class Representation(BaseModel):
    """How examples become vectors; part of every cache-independent run config."""

    model_config = ConfigDict(extra="forbid")

    kind: RepresentationKind = DEFAULT_KIND
    text_weight: float = Field(default=DEFAULT_TEXT_WEIGHT, ge=0.0, le=1.0,
                               description="hybrid: weight of the text view (criteria get the rest)")
    # None = what was validated: on for hybrid (its text half already carries every example), off for
    # criteria, where replacing degenerate answers by text vectors lowered both rank correlation and
    # agreement with gold intents on the held-out comparison (the two spaces do not mix well).
    gate: bool | None = Field(default=None, description="degenerate criteria fall back to the text view")

    @property
    def gated(self) -> bool:
        return self.gate if self.gate is not None else self.kind == "hybrid"

    @property
    def uses_llm(self) -> bool:
        return self.kind != "text"

    @property
    def default_threshold(self) -> float:
        return DEFAULT_THRESHOLDS[self.kind]


def degenerate_reason(criteria: dict[str, str] | None, text: str, *, fields: Sequence[str],
                      copied: set[str]) -> str | None:
    """Why an extraction cannot stand for its example, or None when it can.

    The first embedded criterion (the intent in the bundled prompt) carries the distinction between
    requests; a one-word or generic answer ("error", "no", "do not do") erases it, and an answer
    copied from the prompt's worked examples while its words are absent from the text describes
    the prompt, not the example.
    """
    if criteria is None:
        return "extraction failed"
    if not fields:
        return None
    value = (criteria.get(fields[0]) or "").strip().lower()
    words = _WORD.findall(value)
    if len(words) < 2:
        return "one-word answer"
    if " ".join(words) in _GENERIC:
        return "generic answer"
    if value in copied:
        text_words = set(_WORD.findall(text.lower()))
        if sum(w in text_words for w in words) < len(words) / 2:
            return "copied worked example"
    return None


def copied_values(few_shot_outputs: Sequence[dict[str, object]], fields: Sequence[str]) -> set[str]:
    """The first embedded criterion's values in the prompt's worked examples."""
    if not fields:
        return set()
    return {str(out.get(fields[0], "")).strip().lower() for out in few_shot_outputs if out.get(fields[0])}


def criteria_text(criteria: dict[str, str], fields: Sequence[str]) -> str:
    """The text that represents an example's criteria in embedding space: chosen criteria, labelled."""
    return "; ".join(f"{f}: {criteria[f]}" for f in fields if criteria.get(f))


def represent(examples: Sequence[Example], extractions: Sequence[Extraction] | None, *,
              representation: Representation, model: Embedder, cache: ModelCache, fields: Sequence[str],
              copied: set[str] | None = None, distance_threshold: float | None = None,
              progress: ProgressReporter | None = None) -> tuple[list[EmbeddedExample], RepresentationInfo]:
    """One vector per clusterable example, in input order, and what was done to get it.

    `criteria` leaves out examples whose extraction failed (they are in the report's failures);
    `text` and `hybrid` keep every example. Vectors are unit norm, so cosine distance applies.
    """
    progress = progress or NullProgress()
    kind = representation.kind
    copied = copied or set()
    by_id = {e.example_id: e for e in (extractions or [])}
    reasons: Counter[str] = Counter()

    if kind == "criteria":
        kept = [ex for ex in examples if by_id.get(ex.id) is not None and by_id[ex.id].ok]
    else:
        kept = list(examples)
    total = len(kept) * (2 if kind == "hybrid" else 1)
    progress.start("embed", total)
    try:
        def advance(k: int) -> None:
            progress.advance("embed", k)

        text_vecs = (embed_texts([ex.text for ex in kept], model=model, cache=cache, progress=advance)
                     if kind != "criteria" else None)
        crit_vecs: np.ndarray | None = None
        crit_texts: list[str] = []
        use_text: list[bool] = []
        if kind != "text":
            for ex in kept:
                ext = by_id.get(ex.id)
                crit = ext.criteria if ext is not None else None
                reason = degenerate_reason(crit, ex.text, fields=fields, copied=copied)
                if reason == "extraction failed" or (reason is not None and representation.gated):
                    reasons[reason] += 1
                    use_text.append(True)
                    crit_texts.append(ex.text)
                else:
                    use_text.append(False)
                    crit_texts.append(criteria_text(crit or {}, fields) or ex.text)
            # a gated example's text goes through the same call: one embedding pass, one cache
            crit_vecs = embed_texts(crit_texts, model=model, cache=cache, progress=advance)
    finally:
        progress.finish("embed")

    if kind == "text":
        vectors, shown = text_vecs, [ex.text for ex in kept]
    elif kind == "criteria":
        vectors, shown = crit_vecs, crit_texts
    else:
        w = representation.text_weight
        vectors = np.hstack([np.sqrt(w) * text_vecs, np.sqrt(1 - w) * crit_vecs]).astype(np.float32)
        shown = [f"{ex.text} || {c}" if not t else ex.text for ex, c, t in zip(kept, crit_texts, use_text, strict=True)]
    assert vectors is not None
    embedded = [EmbeddedExample(example_id=ex.id, embedded_text=s, vector=v.tolist())
                for ex, s, v in zip(kept, shown, vectors, strict=True)]
    info = RepresentationInfo(
        kind=kind,
        text_weight=representation.text_weight if kind == "hybrid" else None,
        gate=representation.gated if kind != "text" else False,
        distance_threshold=distance_threshold,
        embedded_criteria=list(fields) if kind != "text" else [],
        n_text_fallback=sum(reasons.values()),
        fallback_reasons=dict(sorted(reasons.items())),
    )
    return embedded, info
