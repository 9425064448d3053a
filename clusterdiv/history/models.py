"""The current schema (as SQLAlchemy Core tables) and the typed records the store hands out.

The tables here describe the schema *after* every migration; `migrations.py` holds frozen copies
of each step, so editing this file never silently changes what an old migration creates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field

from clusterdiv.core.errors import InputError

HEADLINE_METRICS: tuple[str, ...] = ("score", "score_normalized")
HEADLINE_RANGE = (0.0, 1.0)
"""Both headline scores are modes per sample: distinct modes / n, expected modes at m samples / m."""

DATASET_NAME_CHARS = ("letters, digits, inner spaces and _ - . : + @ ( ) , = ~, starting with a letter, digit "
                      "or _, at most 255 characters")
_DATASET_NAME = re.compile(r"\w(?:[\w .:+@(),=~-]*[\w.:+@(),=~-])?")
"""Why these: the name is a URL path segment (`/v1/datasets/NAME/history`), where `/` can never be
reached and `?`, `#`, `%` mean something else unless encoded; the CLI takes it as an argument,
where a leading `-` is an option; and `history` prints it into tables and markdown."""


def dataset_name_problem(name: str) -> str | None:
    """Why `name` cannot name a dataset in history, or None (one rule for track, score, check, the service)."""
    if len(name) <= 255 and _DATASET_NAME.fullmatch(name):
        return None
    if not name.strip():
        return f"an empty dataset name is not allowed: use {DATASET_NAME_CHARS}"
    shown = name if len(name) <= 80 else name[:80] + "..."
    return f"dataset name {shown!r} is not allowed: use {DATASET_NAME_CHARS}"


def check_dataset_name(name: str) -> str:
    """`name`, or InputError saying which characters a dataset name may hold."""
    problem = dataset_name_problem(name)
    if problem:
        raise InputError(problem)
    return name


def trackable_metrics() -> list[str]:
    """Names a threshold may use: the headline scores plus every registered set metric (plugins too)."""
    from clusterdiv.metrics.registry import metric_names

    return [*HEADLINE_METRICS, *metric_names()]


def direction(metric: str) -> int:
    """+1: higher means more diverse; -1: higher means less diverse; 0: neither (any move is flagged).

    The headline scores are +1; set metrics say so in the metric registry; unknown names are +1.
    """
    if metric in HEADLINE_METRICS:
        return 1
    from clusterdiv.metrics.registry import direction as registered_direction

    return registered_direction(metric)


def check_rules(rules: Iterable[Threshold]) -> None:
    """Refuse a rule naming an unknown metric or a bound outside the metric's range (exit 2): a
    gate that can never fail passes every batch silently, one that can never pass fails them all."""
    from clusterdiv.metrics.registry import value_range
    from clusterdiv.metrics.spec import out_of_range

    known = trackable_metrics()
    for rule in rules:
        if rule.metric not in known:
            raise InputError(f"unknown metric {rule.metric!r}; choose from {', '.join(sorted(known))}")
        bounds = HEADLINE_RANGE if rule.metric in HEADLINE_METRICS else value_range(rule.metric)
        problem = out_of_range(rule.metric, bounds, low=rule.min, high=rule.max)
        if problem:
            raise InputError(problem)


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("owner", sa.String(255)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("drop_share", sa.Float),  # migration 2
    sa.Column("drop_window", sa.Integer),  # migration 2
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("batch_id", sa.String(255), nullable=False),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("source", sa.Text),
    sa.Column("owner", sa.String(255)),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("n_samples", sa.Integer),
    sa.Column("score", sa.Float),
    sa.Column("score_normalized", sa.Float),
    sa.Column("clusterdiv_version", sa.String(32)),
    sa.Column("config_json", sa.Text, nullable=False),
    sa.Column("report_json", sa.Text, nullable=False),
    sa.Column("gate_status", sa.String(16)),  # migration 2
    sa.Column("llm_calls", sa.Integer),  # migration 5
    sa.Column("prompt_tokens", sa.Integer),  # migration 5
    sa.Column("completion_tokens", sa.Integer),  # migration 5
    sa.Column("llm_cost_usd", sa.Float),  # migration 5: None = unknown (a run recorded before it)
    sa.Index("ix_runs_dataset_recorded", "dataset_id", "recorded_at"),
)

run_metrics = sa.Table(
    "run_metrics", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Float),
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
)

run_tags = sa.Table(  # migration 2
    "run_tags", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.String(255), primary_key=True),
)

thresholds = sa.Table(  # migration 2
    "thresholds", metadata,
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("metric", sa.String(64), primary_key=True),
    sa.Column("min_value", sa.Float),
    sa.Column("max_value", sa.Float),
)


class MetricRecord(BaseModel):
    value: float | None
    ci95: tuple[float, float] | None = None


class RunRecord(BaseModel):
    """One recorded run as read back: identity, provenance and its flattened metrics."""

    id: int
    dataset: str
    batch_id: str
    content_hash: str | None = None
    source: str | None = None
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    recorded_at: datetime
    n_samples: int | None = None
    gate_status: Literal["passed", "breached"] | None = None
    clusterdiv_version: str | None = None
    metrics: dict[str, MetricRecord] = Field(default_factory=dict)
    # The batch's LLM spend (the report's timings): None where not known (recorded before migration 5).
    llm_calls: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    llm_cost_usd: float | None = None

    def spend(self) -> str:
        """The spend in a table cell: calls, tokens and dollars ('' for a run with no LLM call)."""
        if not self.llm_calls:
            return ""
        cost = "price unknown" if self.llm_cost_usd is None else f"${self.llm_cost_usd:.4f}"
        return (f"{self.llm_calls} calls, {(self.prompt_tokens or 0) + (self.completion_tokens or 0):,} tokens, "
                f"{cost}")

    def value(self, metric: str) -> float | None:
        m = self.metrics.get(metric)
        return m.value if m is not None else None


class Threshold(BaseModel):
    metric: str
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


DEFAULT_DROP_SHARE = 0.2
DEFAULT_DROP_WINDOW = 5


class Tracking(BaseModel):
    """A dataset's owner and the rules its batches must meet."""

    dataset: str
    owner: str | None = None
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    drop_share: float | None = None  # None: drops are shown by `history` but do not fail `check`
    drop_window: int = DEFAULT_DROP_WINDOW
