"""The history store: SQLAlchemy Core over SQLite (default) or any server database.

Why the SQLite settings: WAL lets readers (`history`) run while a batch is being recorded, the
busy timeout makes concurrent writers (parallel CI jobs) queue instead of failing, and every
write transaction starts with BEGIN IMMEDIATE so it takes the write lock up front; a deferred
transaction that upgrades to a writer later can fail with SQLITE_BUSY without waiting. Each run is
written in one transaction: a crash or kill mid-write leaves no partial run behind.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from clusterdiv.core.errors import InputError
from clusterdiv.history import migrations
from clusterdiv.history.models import (
    MetricRecord,
    RunRecord,
    Threshold,
    Tracking,
    check_dataset_name,
    check_rules,
    datasets,
    run_metrics,
    run_tags,
    runs,
    thresholds,
)
from clusterdiv.reports.sections import CLUSTER_SHARES

HISTORY_ENV_VAR = "CLUSTERDIV_HISTORY_DB"
BUSY_TIMEOUT_S = 60.0
# Test hook: seconds to sleep inside the write transaction, after the run row and before its
# metrics, so a test can kill the writer mid-transaction. Never set it in real use.
PAUSE_ENV_VAR = "CLUSTERDIV_HISTORY_TEST_PAUSE"
PAUSE_MARKER = "clusterdiv-history: paused inside write transaction"


class NoHistoryDatabase(InputError):
    """A command that only reads history found no database (and, reading, made none)."""


def default_history_url() -> str:
    path = Path(platformdirs.user_data_dir("clusterdiv")) / "history.sqlite"
    return f"sqlite:///{path}"


def resolve_history_url(db: str | Path | None = None) -> str:
    """`db` (URL or file path), else `$CLUSTERDIV_HISTORY_DB`, else the user data directory.

    A bare path means SQLite. `postgresql://` URLs use psycopg 3 (the driver we depend on), since
    SQLAlchemy would otherwise pick psycopg2.
    """
    value = str(db) if db is not None else os.environ.get(HISTORY_ENV_VAR) or default_history_url()
    if "://" not in value:
        return f"sqlite:///{Path(value).expanduser().resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix):]
    return value


def _not_a_database(path: str, exc: BaseException) -> InputError:
    return InputError(f"history database {path} is not a usable SQLite database ({exc}); move it away or "
                      "point the history database ($CLUSTERDIV_HISTORY_DB) at another file", option="history_db")


def _sqlite_engine(url: sa.URL, *, create: bool = True) -> sa.Engine:
    import sqlite3

    from clusterdiv.core.cache_store import private_dir, private_file

    on_disk = Path(url.database) if url.database and url.database != ":memory:" else None
    if on_disk is not None and not create and not on_disk.is_file():
        raise NoHistoryDatabase(f"no history database at {on_disk}")
    if on_disk is not None and create:
        try:
            private_dir(on_disk.parent)  # submitted texts live here: 0700 / 0600
            private_file(on_disk)
        except OSError as exc:
            raise InputError(f"cannot create the history database {url.database}: {exc}") from exc
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
    shown = url.database or ":memory:"

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver's implicit BEGINs off; we emit our own
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            if not isinstance(exc, sqlite3.OperationalError):
                raise _not_a_database(shown, exc) from exc
            raise
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> Any:
        orig = context.original_exception
        if isinstance(orig, sqlite3.DatabaseError) and not isinstance(orig, sqlite3.OperationalError):
            return _not_a_database(shown, orig)  # e.g. "database disk image is malformed"
        return None

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("clusterdiv_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def make_engine(url: str, *, create: bool = True) -> sa.Engine:
    """An engine for `url`; `create=False` (commands that only read) refuses a SQLite file that is not
    there instead of creating it and its folders: a typo in the path must not leave an empty store."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InputError(f"not a database URL or path: {url}") from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, create=create)
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise InputError(f"no database driver for {parsed.drivername}: {exc}") from exc


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we write is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _spend(report: Any) -> dict[str, Any]:
    """A run's LLM spend columns from its report's timings. The price is None (unknown) when some
    answered call had no price in litellm's map, since a partial sum would read as the whole bill."""
    t = getattr(report, "timings", None)
    if t is None:
        return {}
    cost = None if getattr(t, "llm_unpriced_calls", 0) else getattr(t, "llm_cost_usd", None)
    return {"llm_calls": t.llm_calls, "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
            "llm_cost_usd": cost}


def flatten_metrics(report: Any) -> dict[str, MetricRecord]:
    """Headline scores and every numeric `metrics[name].value` of a Report, by name."""
    out = {
        "score": MetricRecord(value=report.score, ci95=report.ci95),
        "score_normalized": MetricRecord(value=report.score_normalized, ci95=report.ci95_normalized),
    }
    for name, entry in (report.metrics or {}).items():
        if name != CLUSTER_SHARES and isinstance(entry, dict) and "value" in entry:  # the shares are no metric
            ci = entry.get("ci95")
            out[name] = MetricRecord(value=_number(entry.get("value")),
                                     ci95=tuple(ci) if ci and len(ci) == 2 else None)
    return out


class HistoryStore:
    """Open (and migrate) a history database; every write is one transaction.

    `create=False` for a command that only reads: a database that is not there is an error
    ("no history database at ..."), never a new empty one.
    """

    def __init__(self, db: str | Path | None = None, *, migrate: bool = True, create: bool = True):
        self.url = resolve_history_url(db)
        self.engine = make_engine(self.url, create=create)
        try:
            if migrate:
                migrations.migrate(self.engine)
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise InputError(f"cannot open history database {self.display_url}: {exc.orig}") from exc
        except InputError:
            self.engine.dispose()
            raise

    @property
    def display_url(self) -> str:
        return sa.make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> sa.Connection:
        return self.engine.connect().execution_options(clusterdiv_write=True)

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return migrations.current_version(conn)

    # ------------------------------------------------------------ writes

    def _dataset_id(self, conn: sa.Connection, name: str, *, create: bool) -> int | None:
        found = conn.execute(sa.select(datasets.c.id).where(datasets.c.name == name)).scalar()
        if found is not None or not create:
            return found
        values = {"name": name, "created_at": datetime.now(timezone.utc)}
        if conn.dialect.name in ("sqlite", "postgresql"):
            # A concurrent writer may create the same dataset first; that is not an error.
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            conn.execute(insert(datasets).values(**values).on_conflict_do_nothing())
        else:
            conn.execute(datasets.insert().values(**values))
        return conn.execute(sa.select(datasets.c.id).where(datasets.c.name == name)).scalar_one()

    def record(self, report: Any, *, dataset: str, batch_id: str, owner: str | None = None,
               tags: Iterable[str] = (), gate_status: str | None = None,
               recorded_at: datetime | None = None) -> int:
        """Store one scored report with its flattened metrics and tags; returns the run id."""
        check_dataset_name(dataset)
        recorded_at = recorded_at or datetime.now(timezone.utc)
        total = getattr(getattr(report, "timings", None), "total_s", 0.0) or 0.0
        config = report.config.model_dump(mode="json") if report.config is not None else {}
        values = flatten_metrics(report)
        pause = float(os.environ.get(PAUSE_ENV_VAR, "0") or 0)
        with self._write() as conn, conn.begin():
            dataset_id = self._dataset_id(conn, dataset, create=True)
            if owner is None:
                owner = conn.execute(sa.select(datasets.c.owner).where(datasets.c.id == dataset_id)).scalar()
            run_id = conn.execute(runs.insert().values(
                dataset_id=dataset_id, batch_id=batch_id, content_hash=report.content_hash,
                source=report.source, owner=owner, started_at=recorded_at - timedelta(seconds=total),
                recorded_at=recorded_at, n_samples=report.n_samples, score=report.score,
                score_normalized=report.score_normalized,
                clusterdiv_version=config.get("clusterdiv_version"),
                config_json=json.dumps(config, sort_keys=True), report_json=report.to_json(indent=None),
                gate_status=gate_status, **_spend(report),
            ).returning(runs.c.id)).scalar_one()
            if pause > 0:
                print(PAUSE_MARKER, flush=True)
                time.sleep(pause)
            conn.execute(run_metrics.insert(), [
                {"run_id": run_id, "name": name, "value": m.value,
                 "ci_low": m.ci95[0] if m.ci95 else None, "ci_high": m.ci95[1] if m.ci95 else None}
                for name, m in values.items()
            ])
            unique_tags = sorted({t for t in tags if t})
            if unique_tags:
                conn.execute(run_tags.insert(), [{"run_id": run_id, "tag": t} for t in unique_tags])
        return int(run_id)

    def set_tracking(self, dataset: str, *, owner: str | None = None,
                     rules: Sequence[Threshold] = (), drop_share: float | None = None,
                     drop_window: int | None = None, clear: bool = False,
                     remove: Iterable[str] = ()) -> Tracking:
        """Create or update a dataset's owner and rules; named metrics replace their old rule."""
        check_dataset_name(dataset)
        remove = list(remove)
        check_rules([*rules, *(Threshold(metric=m) for m in remove)])
        if drop_share is not None and not 0 < drop_share < 1:
            raise InputError("the drop share must be between 0 and 1 (e.g. 0.2 = a 20% drop)", option="drop_share")
        if drop_window is not None and drop_window < 1:
            raise InputError("the drop window must be at least 1", option="drop_window")
        with self._write() as conn, conn.begin():
            dataset_id = self._dataset_id(conn, dataset, create=True)
            updates: dict[str, Any] = {}
            if owner is not None:
                updates["owner"] = owner
            if drop_share is not None:
                updates["drop_share"] = drop_share
            if drop_window is not None:
                updates["drop_window"] = drop_window
            if clear:
                updates.setdefault("drop_share", None)
                conn.execute(thresholds.delete().where(thresholds.c.dataset_id == dataset_id))
            for metric in remove:
                conn.execute(thresholds.delete().where(
                    (thresholds.c.dataset_id == dataset_id) & (thresholds.c.metric == metric)))
            if updates:
                conn.execute(datasets.update().where(datasets.c.id == dataset_id).values(**updates))
            for rule in rules:
                conn.execute(thresholds.delete().where(
                    (thresholds.c.dataset_id == dataset_id) & (thresholds.c.metric == rule.metric)))
                conn.execute(thresholds.insert().values(
                    dataset_id=dataset_id, metric=rule.metric, min_value=rule.min, max_value=rule.max))
        tracking = self.tracking(dataset)
        assert tracking is not None
        return tracking

    # ------------------------------------------------------------ reads

    def tracking(self, dataset: str) -> Tracking | None:
        """The dataset's owner and rules; None when the dataset has never been seen."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(datasets).where(datasets.c.name == dataset)).mappings().first()
            if row is None:
                return None
            rules = conn.execute(sa.select(thresholds).where(thresholds.c.dataset_id == row["id"])
                                 .order_by(thresholds.c.metric)).mappings().all()
        return Tracking(
            dataset=dataset, owner=row["owner"], drop_share=row["drop_share"],
            drop_window=row["drop_window"] or Tracking.model_fields["drop_window"].default,
            thresholds={r["metric"]: Threshold(metric=r["metric"], min=r["min_value"], max=r["max_value"])
                        for r in rules},
        )

    def runs(self, dataset: str, *, last: int | None = None) -> list[RunRecord]:
        """The dataset's runs, oldest first (the last `last` of them when given)."""
        with self.engine.connect() as conn:
            dataset_id = self._dataset_id(conn, dataset, create=False)
            if dataset_id is None:
                return []
            query = (sa.select(runs).where(runs.c.dataset_id == dataset_id)
                     .order_by(runs.c.recorded_at.desc(), runs.c.id.desc()))
            if last is not None:
                query = query.limit(last)
            rows = list(reversed(conn.execute(query).mappings().all()))
            of_dataset = sa.select(runs.c.id).where(runs.c.dataset_id == dataset_id).scalar_subquery()
            metrics: dict[int, dict[str, MetricRecord]] = {}
            for m in conn.execute(sa.select(run_metrics).where(run_metrics.c.run_id.in_(of_dataset))).mappings():
                ci = (m["ci_low"], m["ci_high"]) if m["ci_low"] is not None and m["ci_high"] is not None else None
                metrics.setdefault(m["run_id"], {})[m["name"]] = MetricRecord(value=m["value"], ci95=ci)
            tags: dict[int, list[str]] = {}
            for t in conn.execute(sa.select(run_tags).where(run_tags.c.run_id.in_(of_dataset))
                                  .order_by(run_tags.c.tag)).mappings():
                tags.setdefault(t["run_id"], []).append(t["tag"])
        return [RunRecord(
            id=r["id"], dataset=dataset, batch_id=r["batch_id"], content_hash=r["content_hash"],
            source=r["source"], owner=r["owner"], tags=tags.get(r["id"], []),
            started_at=_utc(r["started_at"]), recorded_at=_utc(r["recorded_at"]),
            n_samples=r["n_samples"], gate_status=r["gate_status"],
            clusterdiv_version=r["clusterdiv_version"], metrics=metrics.get(r["id"], {}),
            llm_calls=r["llm_calls"], prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"],
            llm_cost_usd=r["llm_cost_usd"],
        ) for r in rows]

    def report_json(self, run_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            blob = conn.execute(sa.select(runs.c.report_json).where(runs.c.id == run_id)).scalar()
        return json.loads(blob) if blob is not None else None

    def count_runs(self, dataset: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(runs)
        if dataset is not None:
            query = query.join(datasets, runs.c.dataset_id == datasets.c.id).where(datasets.c.name == dataset)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def datasets(self) -> list[dict[str, Any]]:
        """Every dataset with its owner, run count and last run time."""
        query = (sa.select(datasets.c.name, datasets.c.owner, sa.func.count(runs.c.id).label("runs"),
                           sa.func.max(runs.c.recorded_at).label("last_run"))
                 .select_from(datasets.outerjoin(runs, runs.c.dataset_id == datasets.c.id))
                 .group_by(datasets.c.id, datasets.c.name, datasets.c.owner).order_by(datasets.c.name))
        with self.engine.connect() as conn:
            return [{**dict(r), "last_run": _utc(r["last_run"])} for r in conn.execute(query).mappings()]
