"""Numbered schema migrations, applied in order when a store is opened.

Each migration runs in the same transaction as the `schema_version` row that records it, so a
database is always at exactly one version. The table definitions below are frozen copies: a later
change to `models.py` must come with a new migration, never an edit here, or databases created by
different releases would disagree about what "version 1" means.

Opening is safe under concurrency: SQLite takes the write lock first (BEGIN IMMEDIATE, see
store.py) and PostgreSQL a transaction-scoped advisory lock, so two processes opening a fresh
database migrate it once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone

import sqlalchemy as sa

ADVISORY_LOCK_KEY = 0x636C7573  # "clus": serialises migrations across PostgreSQL sessions


def _v1(conn: sa.Connection) -> None:
    """datasets, runs and their flattened metrics."""
    md = sa.MetaData()
    sa.Table(
        "datasets", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("owner", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "runs", md,
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
        sa.Index("ix_runs_dataset_recorded", "dataset_id", "recorded_at"),
    )
    sa.Table(
        "run_metrics", md,
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float),
        sa.Column("ci_low", sa.Float),
        sa.Column("ci_high", sa.Float),
    )
    md.create_all(conn)


def _add_column(conn: sa.Connection, table: str, name: str, type_: sa.types.TypeEngine) -> None:
    # ALTER TABLE ... ADD COLUMN with a nullable column is the one form SQLite and PostgreSQL share.
    conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {type_.compile(dialect=conn.dialect)}"))


def _v2(conn: sa.Connection) -> None:
    """Tags per run, per-dataset thresholds and drop rule, and the gate's verdict per run."""
    md = sa.MetaData()
    sa.Table("datasets", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("runs", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "run_tags", md,
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(255), primary_key=True),
    )
    sa.Table(
        "thresholds", md,
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("min_value", sa.Float),
        sa.Column("max_value", sa.Float),
    )
    md.tables["run_tags"].create(conn)
    md.tables["thresholds"].create(conn)
    _add_column(conn, "datasets", "drop_share", sa.Float())
    _add_column(conn, "datasets", "drop_window", sa.Integer())
    _add_column(conn, "runs", "gate_status", sa.String(16))


def _v3(conn: sa.Connection) -> None:
    """Service jobs: the request, its progress and its result, so a restart loses nothing."""
    md = sa.MetaData()
    sa.Table(
        "jobs", md,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dataset", sa.String(255)),
        sa.Column("owner", sa.String(255)),
        sa.Column("n_examples", sa.Integer, nullable=False),
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("progress_json", sa.Text),
        sa.Column("result_json", sa.Text),
        sa.Column("exploration_json", sa.Text),
        sa.Column("markdown", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(255)),
        sa.Column("run_id", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Index("ix_jobs_status_created", "status", "created_at"),
        sa.Index("ix_jobs_dataset_created", "dataset", "created_at"),
    )
    md.create_all(conn)


def _v4(conn: sa.Connection) -> None:
    """The tail-audit job kind takes the CLI command's name, `audit-tail` (it was `audit`).

    A queued or interrupted job is re-read from its stored request when a worker claims it, so the
    request's `kind` is rewritten along with the column.
    """
    rows = conn.execute(sa.text("SELECT id, request_json FROM jobs WHERE kind = 'audit'")).all()
    for job_id, request_json in rows:
        request = json.loads(request_json)
        request["kind"] = "audit-tail"
        conn.execute(sa.text("UPDATE jobs SET kind = 'audit-tail', request_json = :r WHERE id = :i"),
                     {"r": json.dumps(request, ensure_ascii=False), "i": job_id})


def _v5(conn: sa.Connection) -> None:
    """What each run spent on the LLM: calls, prompt and completion tokens, and its price in dollars.

    Runs recorded before carry their calls and tokens in their stored report's timings, so they are
    read from there; their price was never recorded and stays NULL (unknown), never 0.
    """
    for name, type_ in (("llm_calls", sa.Integer()), ("prompt_tokens", sa.Integer()),
                        ("completion_tokens", sa.Integer()), ("llm_cost_usd", sa.Float())):
        _add_column(conn, "runs", name, type_)
    for run_id, report_json in conn.execute(sa.text("SELECT id, report_json FROM runs")).all():
        try:
            timings = json.loads(report_json).get("timings") or {}
        except (ValueError, AttributeError):
            continue
        conn.execute(sa.text("UPDATE runs SET llm_calls = :c, prompt_tokens = :p, completion_tokens = :o "
                             "WHERE id = :i"),
                     {"c": timings.get("llm_calls"), "p": timings.get("prompt_tokens"),
                      "o": timings.get("completion_tokens"), "i": run_id})


MIGRATIONS: list[tuple[int, str, Callable[[sa.Connection], None]]] = [
    (1, "datasets, runs, run_metrics", _v1),
    (2, "run_tags, thresholds, drop rule, gate_status", _v2),
    (3, "service jobs", _v3),
    (4, "the tail-audit job kind is audit-tail", _v4),
    (5, "runs record their LLM spend", _v5),
]
LATEST = MIGRATIONS[-1][0]

_schema_version = sa.Table(
    "schema_version", sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


def current_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(_schema_version.c.version))).scalar() or 0)


def migrate(engine: sa.Engine, *, target: int = LATEST) -> list[int]:
    """Bring the database to `target` (default: latest); returns the versions applied now."""
    from clusterdiv.core.errors import ClusterdivError

    with engine.connect().execution_options(clusterdiv_write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        _schema_version.create(conn, checkfirst=True)
        have = current_version(conn)
        if have > LATEST:
            raise ClusterdivError(
                f"history database is at schema version {have}, newer than this clusterdiv "
                f"supports ({LATEST}); upgrade clusterdiv")
        applied = []
        for version, description, step in MIGRATIONS:
            if have < version <= target:
                step(conn)
                conn.execute(_schema_version.insert().values(
                    version=version, description=description, applied_at=datetime.now(timezone.utc)))
                applied.append(version)
    return applied
