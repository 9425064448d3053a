"""Records that cross stage boundaries.

Every stage of the pipeline takes a list of one of these and returns a list of the next, so a
notebook can run the stages one by one and inspect what each produced.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REFERENCE_SIZE = 100
"""The sample size every size-free number refers to by default (score_normalized, vendi_normalized).

One constant because the two are read together: a report whose two normalised numbers referred to
different sizes would compare a batch with itself at two scales.
"""

MIN_TO_CLUSTER = 3
"""The fewest examples the clustering groups (`modes.cluster.cluster_vectors`: below it the clustering is
`trivial`, each example its own mode, and it is also HDBSCAN's default `min_cluster_size` and the
score's interval minimum). A report on fewer warns that its score is 1.000 or near it by construction."""

MAX_REFERENCE_SIZE = 1_000_000
"""The largest reference size accepted. The normalised score at a size m past the n scored examples is
an extrapolation that tends to the estimated total number of modes divided by m, so at sizes no batch
could have it says nothing (1e12 on 20 texts gave 3.4e-11); the report warns well below this
(`reports.report.EXTRAPOLATION_LIMIT`)."""


def text_hash(text: str) -> str:
    """Content hash used for stable ids and cache keys (sha256 of the UTF-8 text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Example(BaseModel):
    """One input example. `id` is stable across runs: taken from the id field, else from the content."""

    model_config = ConfigDict(frozen=True)

    id: str
    text: str = Field(min_length=1)
    label: str | None = None
    source_line: int | None = Field(default=None, description="1-based line/row in the source file")
    meta: dict[str, object] = Field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str, **kwargs: object) -> Example:
        """Build an example whose id is derived from its content, so the same text gets the same id."""
        return cls(id=kwargs.pop("id", None) or "t" + text_hash(text)[:12], text=text, **kwargs)  # type: ignore[arg-type]


class Extraction(BaseModel):
    """Criteria the LLM gave for one example, or the reason it could not (never silently dropped)."""

    example_id: str
    criteria: dict[str, str] | None = None
    error: str | None = None
    attempts: int = 0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.criteria is not None


class EmbeddedExample(BaseModel):
    """The text that was embedded for an example and its unit-norm vector."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    example_id: str
    embedded_text: str
    vector: list[float] = Field(repr=False)


class ClusterAssignment(BaseModel):
    example_id: str
    cluster: int  # -1 = noise: a mode of its own


RepresentationKind = Literal["text", "criteria", "hybrid"]


class RepresentationInfo(BaseModel):
    """What produced the modes, in the report: kind, weights, threshold and every fallback."""

    kind: RepresentationKind
    text_weight: float | None = None
    gate: bool
    distance_threshold: float | None
    embedded_criteria: list[str] = Field(default_factory=list)
    n_text_fallback: int = Field(default=0, description="examples clustered by their text view alone")
    fallback_reasons: dict[str, int] = Field(default_factory=dict)
