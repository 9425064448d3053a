"""What a metric is: its declaration (`MetricSpec`), what it is computed from (`MetricInputs`) and
what it returns (`MetricValue`), with the direction constants.

Apart from the registry so that the built-in metrics (builtins.py) and plugins can be written
against these types without importing the registry that lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from clusterdiv.core.records import REFERENCE_SIZE
from clusterdiv.metrics import lexical

Group = Literal["lexical", "semantic", "reference"]
GROUPS: tuple[str, ...] = ("lexical", "semantic", "reference")


MORE_DIVERSE = 1
"""Direction: a higher value means a more diverse set (distinct-n, Vendi, recall, ...)."""


LESS_DIVERSE = -1
"""Direction: a higher value means a less diverse set (self-BLEU, mean cosine)."""


NO_DIRECTION = 0
"""Direction: neither way is better (density ~1 means "like the reference"); any move is flagged."""


UNBOUNDED: tuple[float, float] = (-float("inf"), float("inf"))
"""Value range of a metric that declares none (a plugin's, unless it says)."""


SHARE: tuple[float, float] = (0.0, 1.0)
"""Value range of a share or a ratio bounded by 1 (distinct-n, self-BLEU, MAUVE, recall, ...)."""


JACKKNIFE_GROUPS = 20
"""Groups of the delete-a-group jackknife used for the compression-ratio interval."""


COMPRESSION_CI_MAX_BYTES = 64 * 2**20
"""Most bytes gzip may process for the compression-ratio interval (groups x corpus size). Each
group costs a gzip of most of the corpus, so beyond this the interval is not "cheap" any more: it
is left out and ``details`` says why."""


MIN_TEXTS_FOR_INTERVAL = 3
"""Below this many texts a jackknife or bootstrap interval is degenerate (often zero-width): it is
left out (``ci95`` None) and ``details["ci_skipped"]`` says why, instead of a misleading 0-width one."""


def too_few(n: int) -> str | None:
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


@dataclass
class MetricInputs:
    """What a metric's compute function receives; work shared by several metrics is memoised.

    ``texts`` is None when the texts were streamed (:func:`compute_lexical_metrics`): then only
    ``lexical`` is there, the built-in lexical metrics' summary of them.
    """

    texts: list[str] | None
    embeddings: np.ndarray | None = None
    reference_embeddings: np.ndarray | None = None
    seed: int = 0
    bootstrap: int = 200
    self_bleu_sample: int | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    reference_size: int = REFERENCE_SIZE
    """The fixed sample size size-normalised metrics refer to (the headline's ``--reference-size``)."""
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per input set (e.g. the k-NN radii behind precision and recall)."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    lexical_stream: lexical.LexicalStream | None = None

    @property
    def lexical(self) -> lexical.LexicalStream:
        """The texts' lexical summary; in memory, the same stream fed all texts as one chunk."""
        if self.lexical_stream is None:
            assert self.texts is not None
            self.lexical_stream = lexical.LexicalStream(spill=False, keep_texts=keep_for_interval).add(self.texts)
        return self.lexical_stream

    @property
    def corpus(self) -> lexical.EncodedCorpus:
        """The in-memory texts' token ids and n-gram tables (for plugin metrics that want them)."""
        return self.shared("corpus", lambda: lexical.EncodedCorpus(self.lexical))

    @property
    def n_texts(self) -> int:
        return len(self.texts) if self.texts is not None else self.lexical.n_texts


MetricCompute = Callable[[MetricInputs], "MetricValue | float | None"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric, declared once: everything that reads a metric's meaning or direction reads this."""

    name: str
    group: Group
    meaning: str
    direction: int
    """:data:`MORE_DIVERSE` (+1), :data:`LESS_DIVERSE` (-1) or :data:`NO_DIRECTION` (0)."""
    compute: MetricCompute
    builtin: bool = True
    value_range: tuple[float, float] = UNBOUNDED
    """Every value the metric can take lies in [low, high]: a threshold outside it is a rule that can
    never fail (or never pass), so `track` refuses it (:func:`out_of_range`)."""

    @property
    def needs_embeddings(self) -> bool:
        return self.group in ("semantic", "reference")

    @property
    def needs_reference(self) -> bool:
        return self.group == "reference"

    def undefined(self, reason: str, **details: Any) -> MetricValue:
        """This metric without a value, and why: the report shows the reason instead of failing the run."""
        return MetricValue(name=self.name, value=None, meaning=self.meaning, details={"reason": reason, **details})

    def value(self, value: float, **kwargs: Any) -> MetricValue:
        return MetricValue(name=self.name, value=value, meaning=self.meaning, **kwargs)


def out_of_range(name: str, value_range: tuple[float, float], *, low: float | None,
                 high: float | None) -> str | None:
    """Why a rule `low <= name <= high` is meaningless for a metric of `value_range`, else None."""
    lo, hi = value_range
    for kind, bound in (("minimum", low), ("maximum", high)):
        if bound is not None and not lo <= bound <= hi:
            never = "fail" if (kind == "minimum") == (bound < lo) else "pass"
            return (f"{name} {kind} {bound:g} is outside the metric's range [{lo:g}, {hi:g}]: "
                    f"the rule could never {never}")
    return None


def keep_for_interval(raw_bytes: int, n_texts: int) -> bool:
    """Whether a stream keeps its raw texts: only while the compression interval would still be computed."""
    return raw_bytes * min(JACKKNIFE_GROUPS, n_texts) <= COMPRESSION_CI_MAX_BYTES
