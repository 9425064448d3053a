"""The typed sections of a `Report`: tail audit, mix, lineage, drift and the per-mode shares.

Each is a pydantic model the task builds (`anchoring/tail.py`, `mix.py`, `lineage.py`, `drift.py`)
and `Report` holds as is (`Report.tail_audit: TailAudit | None`, ...); `anchoring/render.py` reads
their attributes. The models live here, beside `report.py` and below the tasks, so loading a report
(history, the service) needs no task module. Their JSON is the model's `model_dump(mode="json")`,
field for field what the report carried when the sections were plain dicts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JudgePolicy = Literal["both", "either", "llm", "embedding"]
Verdict = Literal["fresh", "drifting", "stale"]


class Section(BaseModel):
    """Base of every section model. `section["name"]` and `section.get("name")` still read a field,
    for callers written when the sections were dicts; new code reads attributes."""

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in type(self).model_fields else default


# ---------------------------------------------------------------- tail audit

class TailEntryResult(Section):
    name: str
    description: str
    flag: Literal["uncovered", "undecided", "under", "ok"] = Field(
        description="undecided: no seeds and the LLM judge is not trusted, so nothing can vouch for it")
    count: int
    share: float
    decided_by: str
    llm_count: int | None = Field(description="examples the LLM judged members; None when not asked")
    embedding_count: int | None = Field(description="examples the embedding rule matched; None when n/a")
    judged: int = Field(description="examples the LLM judged for this entry (the prefiltered candidates)")
    judge_failures: int = 0
    n_seeds: int
    threshold: float | None
    seed_cohesion: float | None = Field(
        default=None, description="median cosine of each seed to its nearest other seed")
    reference_count: int | None = Field(default=None, description="examples of this label in the reference")
    example_ids: list[str] = Field(description="covering examples, most similar first (capped)")
    llm_only_ids: list[str] = Field(default_factory=list, description="LLM yes, embedding no (capped)")
    embedding_only_ids: list[str] = Field(default_factory=list, description="embedding yes, LLM no (capped)")


class TailAudit(Section):
    """The `tail_audit` section of the report."""

    tail_source: str
    n_batch: int
    n_entries: int
    n_uncovered: int
    n_under: int
    uncovered: list[str]
    under: list[str]
    n_undecided: int = 0
    undecided: list[str] = Field(default_factory=list, description="entries nothing trusted can decide")
    policy: JudgePolicy
    policy_meaning: str
    judge_model: str | None
    embedding_model: str
    calibration: str
    prefilter: str
    min_count: int
    min_share: float
    coverage_rule: str | None = Field(default=None, description="embedding coverage rule: margin or nearest-seed")
    evidence_floor: int = Field(default=1, description="entries with fewer matches than this are uncovered")
    judgements: int = Field(description="(example, entry) pairs the LLM judged")
    judgements_without_prefilter: int = Field(description="|batch| x |entries|: the cost of judging all")
    llm_calls: int = 0
    llm_cache_hits: int = 0
    llm_failures: int = 0
    judge_control_yes_rate: float | None = Field(
        default=None, description="share of negative controls (the examples least like each entry: from the "
                                  "batch, topped up from the reference or the other entries' seeds) the LLM "
                                  "judge called members; above 0.2 its answers are not trusted")
    judge_trusted: bool | None = Field(default=None, description="None when no LLM judged; False when it said "
                                       "yes to too many negative controls or had too few to be calibrated")
    judge_trust_reason: str | None = Field(default=None, description="why the judge is (not) trusted")
    judge_controls: str | None = Field(default=None, description="where the negative controls came from")
    notes: list[str] = Field(default_factory=list)
    entries: list[TailEntryResult]


# ---------------------------------------------------------------- mix budget

class MixCounts(Section):
    n: int
    real: int
    synthetic: int
    real_share: float = Field(description="real / all, by example count")
    real_tokens: int
    synthetic_tokens: int
    real_token_share: float = Field(description="real / all, by token count")


class MixGroup(MixCounts):
    group: str
    share_of_mix: float
    synthetic_share: float
    flag: Literal["synthetic_only", "synthetic_dominates", "real_only", "ok"]
    summary: str = ""


class MixBudget(Section):
    """The `mix` section of the report."""

    source_field: str
    real_values: list[str]
    source_values: dict[str, int] = Field(description="every value of the source field and its count")
    target_real_share: float | None
    tolerance: float
    status: Literal["on_target", "too_synthetic", "too_real", "no_target"]
    to_reach_target: str
    add_real_for_target: int | None
    drop_synthetic_for_target: int | None
    overall: MixCounts
    group_by: str
    dominance_threshold: float
    n_groups: int
    dominated: list[str] = Field(description="groups whose synthetic share is above the dominance threshold")
    groups: list[MixGroup]
    token_rule: str = "clusterdiv.metrics.tokenize (NFKC, lower-case, word runs, CJK per character)"


# ---------------------------------------------------------------- lineage (recursion guard)

class Neighbour(Section):
    id: str
    origin: str
    similarity: float


class FlaggedExample(Section):
    id: str
    round: str
    reasons: list[str]
    nearest_synthetic: Neighbour | None
    nearest_real: Neighbour | None
    chain_depth: int | None = Field(default=None, description="synthetic generations, from declared parents")


class RoundShare(Section):
    round: str
    n: int
    recursion_seeded: int
    share: float
    by_evidence: dict[str, int]


class Lineage(Section):
    """The `lineage` section of the report."""

    n_batch: int
    against: list[dict[str, Any]] = Field(description="earlier synthetic batches: source and size")
    real: dict[str, Any] | None
    embedding_model: str
    threshold: float
    calibration: str
    near_dup_jaccard: float
    shingle_size: int
    rule: str
    recursion_seeded: int
    share: float
    by_evidence: dict[str, int]
    copies_of_real: int = Field(description="exact duplicates of a real example (not recursion, listed for info)")
    max_chain_depth: int | None
    rounds: list[RoundShare]
    flagged_ids: list[str]
    flagged: list[FlaggedExample] = Field(description="details of the first flagged examples (capped)")


# ---------------------------------------------------------------- drift (shelf life)

class Indicator(Section):
    name: str
    value: float | None
    status: Verdict | Literal["n/a"]
    fresh_if: str
    stale_if: str
    meaning: str = ""


class ShareShift(Section):
    cluster_id: int
    batch_share: float
    reference_share: float
    shift: float = Field(description="batch share - reference share")
    flag: str
    criteria_summary: str = ""


class Drift(Section):
    """The `drift` section of the report."""

    verdict: Verdict
    reasons: list[str]
    n_batch: int
    n_reference: int
    reference: str
    embedding_model: str
    seed: int
    indicators: list[Indicator]
    metrics: dict[str, Any] = Field(description="the registry's reference metrics, as in `score --reference`")
    share_shift: float | None = Field(description="excess share distance over its null level, 0..1")
    share_tv: float | None = Field(default=None, description="total variation distance of per-mode shares")
    share_tv_null: float | None = Field(default=None, description="mean TV of random splits of the pooled set")
    clustering: str | None
    shifts: list[ShareShift] = Field(default_factory=list, description="modes by |shift|, largest first")
    missing_modes: list[int] = Field(default_factory=list, description="modes flagged missing or under (modes.shares)")
    over_produced_modes: list[int] = Field(default_factory=list)
    flag_test: str = Field(default="", description="how the modes' flags were decided; empty without clustering")
    expires_after: str | None = None
    as_of: str
    expired: bool = False
    days_left: int | None = None
    thresholds: dict[str, dict[str, Any]]
    notes: list[str] = Field(default_factory=list)



# ---------------------------------------------------------------- per-mode shares against a reference

MODE_PREFIX = "M"
"""Text renderings write a joint mode (batch + reference clustered together) as `M<id>` and a cluster of
the batch alone as a bare number, because the two clusterings number their groups independently:
the report's `clusters` and its `cluster_shares` are two id spaces (docs/ARCHITECTURE.md)."""


def mode_ref(cluster_id: int) -> str:
    """`M3`: how every text rendering writes mode 3 of a batch + reference clustering."""
    return f"{MODE_PREFIX}{cluster_id}"


class ClusterShare(Section):
    cluster_id: int = Field(description="a mode of the batch + reference clustering (written M<id> in text); "
                                        "not an id of the report's `clusters`, which cluster the batch alone")
    batch_count: int
    reference_count: int
    batch_share: float
    reference_share: float
    ratio: float | None  # batch share / reference share; None when the reference has none
    flag: Literal["over", "under", "missing", "untestable", "batch_only", "balanced"] = Field(
        description="missing / under: significantly fewer batch examples than the reference share predicts "
                    "(none / some, the latter at <= 0.5x); untestable: below its real share but too few real "
                    "examples for any batch count to be significant; over: >= 2x the real share; batch_only: no "
                    "real example (modes.shares)")
    p_value: float | None = Field(
        default=None, description="one-sided p that the batch holds this few under equal shares (Fisher exact, "
                                  "lower tail); None for batch_only modes and in reports written before the test")
    q_value: float | None = Field(
        default=None, description="p_value adjusted by Benjamini-Hochberg across the tested modes; None where untestable")
    p_over: float | None = Field(default=None, description="the same test's upper tail: this many or more (the "
                                                           "evidence beside `over`, which stays a ratio rule)")
    q_over: float | None = Field(
        default=None, description="p_over adjusted across the modes that could reach the level; None where none could")
    criteria_summary: str = ""
    name: str = Field(default="", description="the mode's extractive name: its most distinctive words (modes.names)")
    batch_example_ids: list[str] = []
    reference_example_ids: list[str] = []


CLUSTER_SHARES = "cluster_shares"
"""The key of the shares section in `Report.metrics` (kept there so the JSON is unchanged); not a metric."""


class ClusterShares(Section):
    """Each shared mode's share of the batch and of the reference (`score --reference`), batch and
    reference clustered together, and its flag (`modes.shares`). Not a metric: `Report.cluster_shares`
    reads it, typed."""

    method: str = ""
    n_batch: int = 0
    n_reference: int = 0
    n_shared_clusters: int = 0
    alpha: float | None = Field(default=None, description="false discovery rate of the flags' test; None in "
                                                          "reports written before it (ratio flags)")
    flag_test: str = Field(default="", description="how the flags were decided")
    under_covered: list[int] = Field(default_factory=list, description="modes flagged missing or under")
    over_produced: list[int] = Field(default_factory=list, description="modes flagged over or batch_only")
    untestable: list[int] = Field(default_factory=list, description="real modes too small to test")
    clusters: list[ClusterShare] = Field(default_factory=list, description="most discrepant first")

    def counts(self) -> ModeCounts:
        """How many real modes the batch covers, lacks and could not be tested on: the one count
        `score`'s coverage line, `seeds`, `select` and the explorer all print."""
        real = [r for r in self.clusters if r.reference_count > 0]
        lacking = [r for r in real if r.flag in ("missing", "under")]
        untestable = [r for r in real if r.flag == "untestable"]
        return ModeCounts(
            real=len(real), covered=len(real) - len(lacking) - len(untestable), lacking=len(lacking),
            missing=sum(1 for r in lacking if r.flag == "missing"), under=sum(1 for r in lacking if r.flag == "under"),
            untestable=len(untestable), lacking_share=sum(r.reference_share for r in lacking),
            untestable_share=sum(r.reference_share for r in untestable),
            batch_only=sum(1 for r in self.clusters if r.reference_count == 0))


class ModeCounts(BaseModel):
    """The real modes (those with a reference example) split three ways: `covered` (balanced or over),
    `lacking` (`missing` + `under`, tested) and `untestable` (too few real examples to tell); batch-only
    modes are no real mode and are counted apart."""

    real: int
    covered: int
    lacking: int
    missing: int
    under: int
    untestable: int
    lacking_share: float = Field(description="share of the reference in the lacking modes")
    untestable_share: float = Field(description="share of the reference in the untestable modes")
    batch_only: int = 0


class LabelShare(Section):
    """One reference label: how many batch examples the classifier gives it, against the reference."""

    label: str
    reference_count: int = Field(description="reference rows with this label (their own labels)")
    reference_predicted: int = Field(description="reference rows the classifier gives this label out of fold: "
                                                 "the null the batch is tested against")
    batch_count: int = Field(description="batch examples the classifier gives this label")
    expected: float = Field(description="batch count the reference share predicts (n_batch x share, out of fold)")
    ratio: float | None = None
    flag: Literal["over", "under", "missing", "untestable", "balanced"] = Field(
        description="the modes' flags (modes.shares), on labels instead of modes")
    p_value: float | None = None
    q_value: float | None = None
    mean_confidence: float | None = Field(default=None, description="mean top-class probability of the batch "
                                                                   "examples given this label")
    batch_example_ids: list[str] = []
    reference_example_ids: list[str] = []


class LabelCoverage(Section):
    """Coverage by label (`--reference-label-field`): a classifier fitted on the reference's vectors and labels
    assigns each batch example a real label; labels the batch significantly lacks are flagged with the modes'
    test (`modes.labels`)."""

    label_field: str
    classifier: str = Field(description="the classifier chosen by out-of-fold macro F1 on the reference")
    cv_macro_f1: float = Field(description="its out-of-fold macro F1 on the reference (how far to trust it)")
    candidates: dict[str, float] = Field(default_factory=dict, description="every candidate's out-of-fold macro F1")
    n_batch: int
    n_reference: int
    n_labels: int
    alpha: float
    flag_test: str = ""
    low_confidence: int = Field(default=0, description="batch examples whose top class has probability < 0.5")
    lacking: list[str] = Field(default_factory=list, description="labels flagged missing or under")
    untestable: list[str] = Field(default_factory=list)
    labels: list[LabelShare] = Field(default_factory=list, description="most lacking first")

    def line(self, *, limit: int = 5) -> str:
        """The coverage line by label: real labels covered, and the lacking ones with their counts."""
        n_ok = self.n_labels - len(self.lacking) - len(self.untestable)
        lacking = [s for s in self.labels if s.flag in ("missing", "under")]
        shown = ", ".join(f"{s.label} {s.batch_count} of an expected {s.expected:.0f}" for s in lacking[:limit])
        more = f" and {len(lacking) - limit} more" if len(lacking) > limit else ""
        head = (f"by label ({self.label_field!r}, {self.classifier}, out-of-fold macro F1 "
                f"{self.cv_macro_f1:.2f}): {n_ok} of {self.n_labels} real labels covered")
        tail = f"; lacking {len(lacking)}: {shown}{more}" if lacking else "; none significantly lacking"
        small = f"; {len(self.untestable)} too small to test" if self.untestable else ""
        return head + tail + small
