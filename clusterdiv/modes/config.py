"""`ScoreConfig`: everything that defines how examples become modes and a score.

It lives with the stages rather than with the `score` task because every task (score, compare,
explore, the anchoring checks, the service's jobs) builds its mode space from the same settings;
the report records it as `config`, so two reports are comparable exactly when their configs are.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from clusterdiv.core.records import MAX_REFERENCE_SIZE, REFERENCE_SIZE
from clusterdiv.engine import EngineSettings
from clusterdiv.llm.structured import LLMSettings
from clusterdiv.modes.cluster import ClusterParams
from clusterdiv.modes.embed import DEFAULT_EMBEDDING_MODEL
from clusterdiv.modes.represent import Representation
from clusterdiv.modes.shares import DEFAULT_ALPHA, MAX_ALPHA

DEFAULT_SAMPLE_WIDTH = 0.02
"""Auto grows the sample until score_normalized's 95% interval is at most this wide: finer than
the differences between batches that compare and the history gate are asked to resolve."""

SampleSetting = Annotated[int, Field(ge=1)] | Literal["auto", "all"] | None


class ScoreConfig(BaseModel):
    """Everything that defines a scoring run; recorded in the report's `config`."""

    model_config = ConfigDict(extra="forbid")

    def cluster_params(self) -> ClusterParams:
        """The clustering settings with the threshold resolved for the representation in use."""
        return self.clustering.for_representation(self.representation.kind)

    llm: LLMSettings = Field(default_factory=LLMSettings)
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    prompt_file: str | None = None
    criteria: list[str] | None = None  # which criteria to embed; None = the prompt file's `embed`
    representation: Representation = Field(default_factory=Representation)
    clustering: ClusterParams = Field(default_factory=ClusterParams)
    seed: int = 0
    # N = a seeded sample of N; "auto" = a sample grown until the interval is `sample_width` wide;
    # "all" = every example; None = "all" up to AUTO_SAMPLE_ABOVE examples, "auto" above.
    sample: SampleSetting = None
    sample_width: float = Field(default=DEFAULT_SAMPLE_WIDTH, gt=0, lt=1)
    reference_size: int = Field(default=REFERENCE_SIZE, ge=2, le=MAX_REFERENCE_SIZE)
    bootstrap: int = Field(default=200, ge=0)
    metrics: str | None = "all"  # metric names/groups for the `metrics` section; "none" to skip
    self_bleu_sample: int | None = Field(default=2000, ge=2)
    top_clusters: int = Field(default=10, ge=1)
    examples_per_cluster: int = Field(default=5, ge=1)
    # The false discovery rate of the test that flags a real mode missing / under (modes.shares). Here
    # because every task that flags modes (score, compare, explore, seeds, select) takes this config, so
    # they flag alike; it changes no mode and no score, so the report's `config` (RunConfig) omits it and
    # the `cluster_shares` section states it instead.
    alpha: float = Field(default=DEFAULT_ALPHA, gt=0, le=MAX_ALPHA)
    engine: EngineSettings = Field(default_factory=EngineSettings)  # where extraction/embedding misses run


