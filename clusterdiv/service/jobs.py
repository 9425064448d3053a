"""Persistent jobs in the history database: submit, claim, progress, finish, recover.

Why in the database and not in memory: a job is the client's money (LLM calls) and time. A
server killed mid-job must find it again on restart and finish it; the model cache makes the
second attempt pay only for what the first did not finish. Claiming is one write transaction
(SQLite BEGIN IMMEDIATE; PostgreSQL `FOR UPDATE SKIP LOCKED`), so two workers, or two servers
sharing a database, never run the same job at once.

A worker is named `host:pid:nonce`. On start, a server requeues `running` jobs whose worker
process on this host is gone; jobs of other hosts are requeued once their heartbeat is older
than `stale_after_s`. A job interrupted `max_attempts` times is marked failed, with the reason.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from clusterdiv.history import migrations
from clusterdiv.history.store import make_engine, resolve_history_url
from clusterdiv.service.schemas import JobFields, Progress

md = sa.MetaData()
jobs = sa.Table(
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
)

_SUMMARY_COLUMNS = [c for c in jobs.c if c.name not in ("request_json", "result_json", "exploration_json",
                                                          "markdown")]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def new_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class JobRecord(JobFields):
    """A job row without its large payloads (request, result, exploration)."""

    worker: str | None = None
    heartbeat_at: datetime | None = None


class JobResult(BaseModel):
    """What a finished job stores: the report as JSON, optional explorer data, and markdown."""

    result: dict[str, Any]
    exploration: dict[str, Any] | None = None
    markdown: str
    run_id: int | None = None


def _record(row: Any) -> JobRecord:
    data = dict(row)
    progress = data.pop("progress_json", None)
    for key in ("created_at", "started_at", "heartbeat_at", "finished_at"):
        data[key] = _utc(data.get(key))
    return JobRecord(**data, progress=Progress.model_validate_json(progress) if progress else None)


class JobStore:
    """Open (and migrate) the jobs table of a history database."""

    def __init__(self, db: str | None = None, *, create: bool = True):
        self.url = resolve_history_url(db)
        self.engine = make_engine(self.url, create=create)
        migrations.migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> sa.Connection:
        return self.engine.connect().execution_options(clusterdiv_write=True)

    # ------------------------------------------------------------ submit and read

    def submit(self, *, kind: str, request: dict[str, Any], n_examples: int, dataset: str | None,
               owner: str | None) -> JobRecord:
        job_id = uuid.uuid4().hex
        values = {
            "id": job_id, "kind": kind, "status": "queued", "dataset": dataset, "owner": owner,
            "n_examples": n_examples, "request_json": json.dumps(request, ensure_ascii=False),
            "attempts": 0, "created_at": _now(),
        }
        with self._write() as conn, conn.begin():
            conn.execute(jobs.insert().values(**values))
        found = self.get(job_id)
        assert found is not None
        return found

    def get(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*_SUMMARY_COLUMNS).where(jobs.c.id == job_id)).mappings().first()
        return _record(row) if row is not None else None

    def request(self, job_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            blob = conn.execute(sa.select(jobs.c.request_json).where(jobs.c.id == job_id)).scalar_one()
        return json.loads(blob)

    def result(self, job_id: str) -> JobResult | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs.c.result_json, jobs.c.exploration_json, jobs.c.markdown,
                                         jobs.c.run_id).where(jobs.c.id == job_id)).mappings().first()
        if row is None or row["result_json"] is None:
            return None
        return JobResult(
            result=json.loads(row["result_json"]),
            exploration=json.loads(row["exploration_json"]) if row["exploration_json"] else None,
            markdown=row["markdown"] or "", run_id=row["run_id"],
        )

    def report(self, job_id: str) -> dict[str, Any] | None:
        """Only the report document (not the explorer data): what job listings summarise."""
        with self.engine.connect() as conn:
            blob = conn.execute(sa.select(jobs.c.result_json).where(jobs.c.id == job_id)).scalar()
        return json.loads(blob) if blob is not None else None

    def list(self, *, dataset: str | None = None, status: str | None = None, limit: int = 100
             ) -> list[JobRecord]:
        query = sa.select(*_SUMMARY_COLUMNS).order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit)
        if dataset is not None:
            query = query.where(jobs.c.dataset == dataset)
        if status is not None:
            query = query.where(jobs.c.status == status)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).mappings()]

    def counts(self) -> dict[str, int]:
        query = sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    # ------------------------------------------------------------ worker side

    def claim(self, worker: str) -> JobRecord | None:
        """Take the oldest queued job, atomically; None when there is none."""
        with self._write() as conn, conn.begin():
            job_id = conn.execute(
                sa.select(jobs.c.id).where(jobs.c.status == "queued")
                .order_by(jobs.c.created_at, jobs.c.id).limit(1).with_for_update(skip_locked=True)
            ).scalar()
            if job_id is None:
                return None
            now = _now()
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(
                status="running", worker=worker, attempts=jobs.c.attempts + 1,
                started_at=now, heartbeat_at=now, error=None))
        return self.get(job_id)

    def _owned(self, job_id: str, worker: str) -> Any:
        return (jobs.c.id == job_id) & (jobs.c.worker == worker) & (jobs.c.status == "running")

    def heartbeat(self, job_id: str, worker: str, progress: Progress | None = None) -> bool:
        """Record liveness (and progress); False if the job is no longer this worker's."""
        values: dict[str, Any] = {"heartbeat_at": _now()}
        if progress is not None:
            values["progress_json"] = progress.model_dump_json()
        with self._write() as conn, conn.begin():
            return conn.execute(jobs.update().where(self._owned(job_id, worker)).values(**values)).rowcount == 1

    def finish(self, job_id: str, worker: str, result: JobResult) -> bool:
        values = {
            "status": "succeeded", "finished_at": _now(), "heartbeat_at": _now(),
            "result_json": json.dumps(result.result, ensure_ascii=False),
            "exploration_json": json.dumps(result.exploration, ensure_ascii=False)
            if result.exploration is not None else None,
            "markdown": result.markdown, "run_id": result.run_id,
        }
        with self._write() as conn, conn.begin():
            return conn.execute(jobs.update().where(self._owned(job_id, worker)).values(**values)).rowcount == 1

    def fail(self, job_id: str, worker: str, error: str) -> bool:
        with self._write() as conn, conn.begin():
            return conn.execute(jobs.update().where(self._owned(job_id, worker)).values(
                status="failed", finished_at=_now(), error=error)).rowcount == 1

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued or running job; returns its status before (None: no such job).

        A running job's row is marked `cancelled` at once; its worker notices at the next example
        (its heartbeat no longer matches a running row) and stops, keeping every paid answer cached.
        Finished jobs are left as they are."""
        with self._write() as conn, conn.begin():
            before = conn.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
            if before in ("queued", "running"):
                conn.execute(jobs.update().where((jobs.c.id == job_id) & (jobs.c.status == before)).values(
                    status="cancelled", finished_at=_now(), error="cancelled by request"))
        return before

    def release(self, job_id: str, worker: str) -> bool:
        """Give a running job back to the queue (graceful shutdown); its attempt still counts."""
        with self._write() as conn, conn.begin():
            return conn.execute(jobs.update().where(self._owned(job_id, worker)).values(
                status="queued", worker=None)).rowcount == 1

    def recover(self, *, max_attempts: int, stale_after: timedelta, active: set[str] = frozenset(),  # type: ignore[assignment]
                pid_alive: Callable[[int], bool] = _pid_alive) -> list[str]:
        """Requeue (or fail, past `max_attempts`) running jobs whose worker is gone; returns their ids.

        `active` names this process's live workers: a job claimed by an earlier process that
        happened to get the same pid is still recognised as orphaned.
        """
        host = socket.gethostname()
        now = _now()
        touched: list[str] = []
        with self._write() as conn, conn.begin():
            rows = conn.execute(sa.select(jobs.c.id, jobs.c.worker, jobs.c.attempts, jobs.c.heartbeat_at)
                                .where(jobs.c.status == "running")).mappings().all()
            for row in rows:
                worker_host, _, rest = (row["worker"] or "::").partition(":")
                pid_text = rest.partition(":")[0]
                if row["worker"] in active:
                    continue
                if worker_host == host and pid_text.isdigit():
                    pid = int(pid_text)
                    gone = pid == os.getpid() or not pid_alive(pid)
                else:
                    beat = _utc(row["heartbeat_at"])
                    gone = beat is None or now - beat > stale_after
                if not gone:
                    continue
                if row["attempts"] >= max_attempts:
                    values = {"status": "failed", "finished_at": now,
                              "error": f"interrupted {row['attempts']} times (last worker {row['worker']}); "
                                       "not retried again"}
                else:
                    values = {"status": "queued", "worker": None}
                conn.execute(jobs.update().where((jobs.c.id == row["id"]) & (jobs.c.status == "running"))
                             .values(**values))
                touched.append(row["id"])
        return touched
