"""Request and response bodies of the HTTP API (pydantic: validated on the way in and out).

Requests carry texts, never paths: the server reads nothing from disk that a request names.
Integers are strict (`true` is not 1, `"5"` is not 5): the schema says integer, and a client that
sends anything else has a bug it should hear about.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

# Imported here, not in the validator: a lazy import from a request thread while a job thread imports
# the metrics package can see it half-initialised (ImportError, a 500). It imports no torch.
from clusterdiv.history.models import DATASET_NAME_CHARS, dataset_name_problem
from clusterdiv.metrics.registry import validate_selection
from clusterdiv.modes.modespace import REFERENCE
from clusterdiv.modes.shares import DEFAULT_ALPHA, MAX_ALPHA
from clusterdiv.tasks.anchoring.tail_spec import TailEntry, TailSpec, parse_tail_spec

JobKind = Literal["score", "compare", "audit-tail", "select", "seeds"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
SEED_MAX = 2**32 - 1
NonEmptyText = Annotated[str, Field(min_length=1)]  # blank ones: 422 from to_examples ("text 2 is empty")


class InputExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: NonEmptyText
    id: str | None = Field(default=None, min_length=1, max_length=255)
    label: str | None = None


Texts = Annotated[list[NonEmptyText | InputExample], Field(min_length=1)]


class JobOptions(BaseModel):
    """The scoring knobs a client may turn; everything else is the server's configuration."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="LLM; must be one the server allows")
    representation: Literal["text", "criteria", "hybrid"] | None = Field(
        default=None, description="what the modes are built from (default: the validated one, raw text)")
    sample: Annotated[StrictInt, Field(ge=1)] | Literal["auto", "all"] | None = Field(
        default=None, description="N examples, 'auto' (grown to the interval width), 'all'; "
                                  "default: all up to 20,000, auto above")
    seed: StrictInt = Field(default=0, ge=0, le=SEED_MAX)
    metrics: str = Field(default="all", description="metric names/groups, or 'none'")
    bootstrap: StrictInt = Field(default=200, ge=0, le=2000)
    name_clusters: StrictBool = Field(
        default=False, description="LLM-written cluster names for the explorer (one LLM call per cluster, grounded "
                                   "in its members); by default clusters are named by their most distinctive "
                                   "words, with no LLM call")
    alpha: StrictFloat = Field(
        default=DEFAULT_ALPHA, gt=0, le=MAX_ALPHA,
        description="false discovery rate of the test that flags a real mode missing or under-covered (score with a "
                    "reference, compare, select with a reference, seeds; as the CLI's --alpha): one-sided Fisher "
                    "exact test per mode, Benjamini-Hochberg across modes; modes too small to reach it are "
                    "'untestable'. In compare also the pairwise tests' level. audit-tail flags no modes")
    engine: Literal["local", "ray"] | None = Field(
        default=None, description="where extraction and embedding run; always the server's engine (ray when it "
                                  "was started with a Ray cluster, else local): any other is refused (422)")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: str) -> str:
        return validate_selection(value)  # ValueError naming the valid ones: a 422 at submit, before any work


class _JobBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(default=None, max_length=255,
                                description="record the result as a run of this dataset in the history; "
                                            f"{DATASET_NAME_CHARS}")
    owner: str | None = Field(default=None, max_length=255)
    tags: list[str] = Field(default_factory=list, max_length=32)
    options: JobOptions = Field(default_factory=JobOptions)

    @field_validator("dataset")
    @classmethod
    def _dataset_name(cls, value: str | None) -> str | None:
        problem = None if value is None else dataset_name_problem(value)
        if problem:  # the CLI's rule: a name `/v1/datasets/{name}/history` could not reach is a 422 here
            raise ValueError(problem)
        return value


class ScoreJob(_JobBase):
    kind: Literal["score"] = "score"
    texts: Texts
    reference: list[NonEmptyText | InputExample] | None = Field(default=None, min_length=1)

    def n_examples(self) -> int:
        return len(self.texts) + len(self.reference or [])


def _batch_name(name: str) -> str:
    if not name.strip():
        raise ValueError("a batch name must not be blank")
    if name == REFERENCE:
        raise ValueError(f"'{REFERENCE}' is reserved for the reference; name the batch differently")
    return name


BatchName = Annotated[str, Field(max_length=255), AfterValidator(_batch_name)]


class CompareJob(_JobBase):
    kind: Literal["compare"]
    batches: dict[BatchName, Annotated[Texts, Field(min_length=2)]] = Field(
        min_length=2, description="two or more named batches of at least 2 texts each (all compared at one size)")
    reference: list[NonEmptyText | InputExample] | None = Field(default=None, min_length=1)
    permutations: StrictInt = Field(
        default=1000, ge=99, le=10000,
        description="per pairwise test; as in the CLI, at least 99 (fewer cannot reach p < 0.01)")

    def n_examples(self) -> int:
        return sum(len(t) for t in self.batches.values()) + len(self.reference or [])

    @model_validator(mode="after")
    def _sample_fits(self) -> CompareJob:
        """compare scores every batch at one size: a fixed sample must fit the smallest batch (and be 2 or more)."""
        sample = self.options.sample
        if isinstance(sample, int):
            smallest = min(self.batches, key=lambda name: len(self.batches[name]))
            if sample < 2:
                raise ValueError(f"options.sample {sample}: compare needs at least 2 examples per batch")
            if sample > len(self.batches[smallest]):
                raise ValueError(f"options.sample {sample} exceeds the smallest batch "
                                 f"({smallest!r} has {len(self.batches[smallest])})")
        return self


class AuditTailJob(_JobBase):
    kind: Literal["audit-tail"]
    texts: Texts
    # The spec's own models, so the schema says what is accepted (one entry or more, each with name and
    # description); parse_tail_spec validates it first, for its one-line messages naming entry and field.
    tail: TailSpec | Annotated[list[TailEntry], Field(min_length=1)] = Field(
        description="a tail spec: entries with name and description (an object with `entries`, or the list)")
    judge: Literal["both", "either", "embedding", "llm"] = "both"
    min_count: StrictInt = Field(default=1, ge=1)

    def n_examples(self) -> int:
        return len(self.texts)

    @field_validator("tail", mode="before")
    @classmethod
    def _valid_tail(cls, value: Any) -> TailSpec:
        from clusterdiv.core.errors import ClusterdivError

        try:
            return parse_tail_spec(value, source="tail")
        except ClusterdivError as exc:  # pydantic turns ValueError into a 422 naming the field
            raise ValueError(str(exc)) from exc


class SelectJob(_JobBase):
    """`clusterdiv select`: a diverse subset of `texts` of at most `budget` examples (issue 17)."""

    kind: Literal["select"]
    texts: Texts
    budget: StrictInt = Field(ge=1)
    reference: list[NonEmptyText | InputExample] | None = Field(default=None, min_length=1)
    max_share: float | None = Field(default=None, gt=0.0, le=1.0)

    def n_examples(self) -> int:
        return len(self.texts) + len(self.reference or [])


class SeedsJob(_JobBase):
    """`clusterdiv seeds`: real seed examples of every mode `texts` lacks relative to `reference`."""

    kind: Literal["seeds"]
    texts: Texts
    reference: list[NonEmptyText | InputExample] = Field(min_length=1)
    per_mode: StrictInt = Field(default=5, ge=1, le=100)
    missing_only: StrictBool = False  # the schema says boolean: 0 and "yes" are 422

    def n_examples(self) -> int:
        return len(self.texts) + len(self.reference)


JobRequest = Annotated[ScoreJob | CompareJob | AuditTailJob | SelectJob | SeedsJob, Field(discriminator="kind")]


class StageProgress(BaseModel):
    done: int = 0
    total: int = 0


class Progress(BaseModel):
    stage: str | None = None
    stages: dict[str, StageProgress] = Field(default_factory=dict)


class JobFields(BaseModel):
    """The columns of a job that both the store and the API show."""

    id: str
    kind: JobKind
    status: JobState
    dataset: str | None = None
    owner: str | None = None
    n_examples: int
    attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress | None = None
    error: str | None = None
    run_id: int | None = Field(default=None, description="history run id, when recorded")


class Spend(BaseModel):
    """What a finished job spent on the LLM (its report's timings): the provider's usage, priced by
    litellm's offline cost map; calls it could not price (a local model) are counted, not priced."""

    llm_calls: int = 0
    llm_cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_cost_usd: float = 0.0
    llm_unpriced_calls: int = 0
    llm_stopped: str | None = None

    @classmethod
    def from_timings(cls, timings: dict[str, Any] | None) -> Spend | None:
        if not isinstance(timings, dict):
            return None
        return cls.model_validate({k: timings[k] for k in cls.model_fields if timings.get(k) is not None})


class JobView(JobFields):
    """What a client sees of a job: poll it until `status` is succeeded or failed."""

    summary: dict[str, Any] | None = Field(default=None, description="headline numbers once finished")
    spend: Spend | None = Field(default=None, description="LLM calls, tokens and cost, once finished")
    links: dict[str, str] = Field(default_factory=dict)


class JobList(BaseModel):
    jobs: list[JobView]


class ApiError(BaseModel):
    """Every 4xx body: a message, or pydantic's list of validation errors (each naming its field)."""

    detail: str | list[dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "Host header not one this server answers to"},
    401: {"model": ApiError, "description": "missing or wrong bearer token"},
    403: {"model": ApiError, "description": "cross-origin request refused"},
    404: {"model": ApiError, "description": "no such job or dataset"},
    408: {"model": ApiError, "description": "the request body stalled or took too long"},
    409: {"model": ApiError, "description": "the job is not in a state that allows this"},
    413: {"model": ApiError, "description": "body, upload (after decompression) or job over the limits"},
    422: {"model": ApiError, "description": "invalid request: the message or the errors name the field"},
}

HTML_PAGE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": response["description"],
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}}
    for code, response in ERROR_RESPONSES.items()
}
"""For routes whose page is HTML: FastAPI would document their errors as text/html too, and they are JSON.
(`ApiError` is in the document's components: every other route's errors name it.)"""
