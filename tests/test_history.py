"""The history store, its migrations, thresholds and trend flags, on SQLite and on a real PostgreSQL.

Store tests run against both backends (the PostgreSQL one is skipped, with the reason, when the
server binaries or psycopg are missing) because the dialect-specific parts are where they differ.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from clusterdiv.core.errors import InputError
from clusterdiv.history import HistoryStore
from clusterdiv.history.gate import evaluate
from clusterdiv.history.migrations import LATEST, migrate
from clusterdiv.history.models import Threshold
from clusterdiv.history.store import (
    PAUSE_ENV_VAR,
    PAUSE_MARKER,
    flatten_metrics,
    make_engine,
    resolve_history_url,
)
from clusterdiv.history.trend import analyze, sparkline
from clusterdiv.reports.report import Report

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def make_report(score_normalized: float, **metrics: float | None) -> Report:
    """A Report with the fields the store reads; metric values as the registry would dump them."""
    return Report(
        n_input=50, n_samples=50, n_clusters=10, n_noise=2, n_modes=12, score=score_normalized * 0.8,
        score_normalized=score_normalized, ci95=(0.1, 0.9), ci95_normalized=(score_normalized - 0.05,
                                                                             score_normalized + 0.05),
        content_hash="ab" * 32, source="batch.jsonl",
        metrics={name: {"value": v, "ci95": None, "meaning": "", "details": {}} for name, v in metrics.items()},
    )


@pytest.fixture(scope="session")
def postgres():
    import pg_server

    reason = pg_server.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg_server.postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return request.getfixturevalue("postgres").new_database()


def test_a_fresh_database_is_migrated_to_the_latest_schema(db_url):
    with HistoryStore(db_url) as store:
        assert store.schema_version() == LATEST
        tables = set(sa.inspect(store.engine).get_table_names())
    assert {"schema_version", "datasets", "runs", "run_metrics", "run_tags", "thresholds"} <= tables
    with HistoryStore(db_url) as again:  # reopening applies nothing twice
        assert again.schema_version() == LATEST


def test_a_version_3_audit_job_is_migrated_to_the_audit_tail_kind_and_stays_runnable(db_url):
    from clusterdiv.service.jobs import JobStore
    from clusterdiv.service.schemas import AuditTailJob

    engine = make_engine(resolve_history_url(db_url))
    assert migrate(engine, target=3) == [1, 2, 3]
    request = {"kind": "audit", "texts": ["reset my password"], "tail": [{"name": "reset", "description": "d"}]}
    with engine.begin() as conn:  # a job queued by a clusterdiv that still called the kind `audit`
        conn.execute(sa.text(
            "INSERT INTO jobs (id, kind, status, n_examples, request_json, attempts, created_at) "
            "VALUES ('j1', 'audit', 'queued', 1, :r, 0, :t)"), {"r": json.dumps(request), "t": T0})
    engine.dispose()

    with JobStore(db_url) as jobs:
        job = jobs.get("j1")
        assert job is not None and job.kind == "audit-tail" and job.status == "queued"
        stored = jobs.request("j1")
    assert stored == {**request, "kind": "audit-tail"}
    assert AuditTailJob.model_validate(stored).texts == ["reset my password"]  # a worker can run it


def test_a_version_1_database_is_migrated_and_keeps_its_runs(db_url):
    engine = make_engine(resolve_history_url(db_url))
    assert migrate(engine, target=1) == [1]
    with engine.begin() as conn:
        assert not sa.inspect(conn).has_table("thresholds")
        # Plain SQL against the version-1 columns, as an older clusterdiv would have written them.
        conn.execute(sa.text("INSERT INTO datasets (name, owner, created_at) VALUES ('legacy', 'ann', :t)"),
                     {"t": T0})
        dataset_id = conn.execute(sa.text("SELECT id FROM datasets WHERE name = 'legacy'")).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO runs (dataset_id, batch_id, recorded_at, score, score_normalized, config_json, "
            "report_json) VALUES (:d, 'old-batch', :t, 0.4, 0.55, '{}', '{}')"), {"d": dataset_id, "t": T0})
        run_id = conn.execute(sa.text("SELECT id FROM runs")).scalar_one()
        conn.execute(sa.text("INSERT INTO run_metrics (run_id, name, value) VALUES (:r, 'score_normalized', 0.55)"),
                     {"r": run_id})
    engine.dispose()

    with HistoryStore(db_url) as store:
        assert store.schema_version() == LATEST
        [old] = store.runs("legacy")
        assert (old.batch_id, old.value("score_normalized"), old.tags, old.gate_status) == (
            "old-batch", 0.55, [], None)
        # The new schema's features work on the migrated database.
        store.set_tracking("legacy", rules=[Threshold(metric="score_normalized", min=0.5)], drop_share=0.2)
        store.record(make_report(0.6), dataset="legacy", batch_id="new", tags=["after-upgrade"],
                     recorded_at=T0 + timedelta(days=1))
        runs = store.runs("legacy")
        assert [r.batch_id for r in runs] == ["old-batch", "new"] and runs[1].tags == ["after-upgrade"]
        assert runs[1].owner == "ann"  # a run without --owner inherits the dataset's owner
        assert store.tracking("legacy").thresholds["score_normalized"].min == 0.5


def test_a_run_keeps_every_metric_its_report_json_and_tags(db_url):
    report = make_report(0.42, self_bleu=0.3, vendi=7.5, mauve=None)
    report.metrics["cluster_shares"] = {"clusters": []}  # a section, not a metric: not flattened
    with HistoryStore(db_url) as store:
        run_id = store.record(report, dataset="evol", batch_id="b1", owner="bob", tags=["nightly", "v2", "v2"])
        [run] = store.runs("evol")
        assert run.id == run_id and run.owner == "bob" and run.tags == ["nightly", "v2"]
        assert set(run.metrics) == {"score", "score_normalized", "self_bleu", "vendi", "mauve"}
        assert run.value("vendi") == 7.5 and run.value("mauve") is None
        assert run.metrics["score_normalized"].ci95 == pytest.approx((0.37, 0.47))
        assert run.content_hash == "ab" * 32 and run.recorded_at.tzinfo is not None
        assert store.report_json(run_id) == json.loads(report.to_json(indent=None))


def test_thresholds_pass_and_breach_with_readable_reasons(db_url):
    with HistoryStore(db_url) as store:
        with pytest.raises(InputError, match="unknown metric 'slef_bleu'"):
            store.set_tracking("d", rules=[Threshold(metric="slef_bleu", max=0.5)])
        tracking = store.set_tracking("d", owner="carol", rules=[
            Threshold(metric="score_normalized", min=0.35), Threshold(metric="self_bleu", max=0.6),
            Threshold(metric="mauve", min=0.5)])
    good = evaluate(flatten_metrics(make_report(0.5, self_bleu=0.4, mauve=0.9)), tracking, [], batch_id="b")
    assert good.passed and not good.breaches
    bad = evaluate(flatten_metrics(make_report(0.2, self_bleu=0.7)), tracking, [], batch_id="b")
    assert not bad.passed
    reasons = {c.metric: c.reason for c in bad.breaches}
    assert reasons["score_normalized"] == "score_normalized = 0.2 is below the minimum 0.35"
    assert reasons["self_bleu"] == "self_bleu = 0.7 is above the maximum 0.6"
    assert "mauve was not computed (reference metrics need --reference)" in reasons["mauve"]


def test_a_planted_drop_is_flagged_against_the_rolling_median(db_url):
    steady = [0.50, 0.52, 0.49, 0.51, 0.50]
    with HistoryStore(db_url) as store:
        for i, value in enumerate([*steady, 0.30, 0.60]):
            # self_bleu rises (= less diverse) at the same run where score_normalized drops
            bleu = 0.45 if i == 5 else 0.30
            store.record(make_report(value, self_bleu=bleu), dataset="d", batch_id=f"b{i}",
                         recorded_at=T0 + timedelta(hours=i))
        runs = store.runs("d")
        tracking = store.set_tracking("d", drop_share=0.2, drop_window=5)
    trends = {t.metric: t for t in analyze(runs, tracking=tracking)}
    score = trends["score_normalized"]
    assert [p.batch_id for p in score.drops] == ["b5"]  # the rise at b6 is not a drop
    assert score.drops[0].baseline == pytest.approx(0.50) and score.drops[0].adverse_change == pytest.approx(0.4)
    assert [p.batch_id for p in trends["self_bleu"].drops] == ["b5"]  # higher self-BLEU = less diverse
    assert sparkline(score.values)[5] == "▁" and sparkline(score.values)[6] == "█"
    # The gate applies the same rule to a new batch against the previous runs.
    gate = evaluate(flatten_metrics(make_report(0.3)), tracking, runs[:5], batch_id="next")
    assert not gate.passed
    assert "moved 40% towards less diversity vs the median 0.5 of the previous 5 runs" in gate.breaches[0].reason


WRITER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from test_history import make_report
    from clusterdiv.history import HistoryStore
    print("ready", flush=True)
    while {go!r} and not os.path.exists({go!r}):  # start together, so the writes really overlap
        time.sleep(0.01)
    with HistoryStore({db!r}) as store:
        for i in range({n}):
            store.record(make_report(0.5, self_bleu=0.3), dataset="shared", batch_id=f"{{sys.argv[1]}}-{{i}}")
            time.sleep(0.01)  # a writer that also does other work, so the two interleave
""")


def _writer(db: str, n: int, name: str, go: str = "", **env: str) -> subprocess.Popen:
    code = WRITER.format(tests=str(Path(__file__).parent), db=db, n=n, go=go)
    proc = subprocess.Popen([sys.executable, "-c", code, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **env})
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def test_a_run_killed_mid_write_leaves_no_partial_run(db_url):
    with HistoryStore(db_url) as store:
        store.record(make_report(0.5, self_bleu=0.3), dataset="shared", batch_id="kept")
    proc = _writer(db_url, 1, "killed", **{PAUSE_ENV_VAR: "60"})
    try:
        assert proc.stdout.readline().strip() == PAUSE_MARKER  # the run row is inserted, not committed
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    with HistoryStore(db_url) as store:
        with store.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.execute(sa.text("SELECT count(*) FROM run_metrics")).scalar() == 3
        assert [r.batch_id for r in store.runs("shared")] == ["kept"]
        # The killed writer's lock is gone: the next write neither waits nor fails.
        store.record(make_report(0.4), dataset="shared", batch_id="after")
        assert store.count_runs("shared") == 2


def test_two_concurrent_writers_lose_nothing(db_url, tmp_path):
    go = tmp_path / "go"
    writers = [_writer(db_url, 20, name, go=str(go)) for name in ("a", "b")]
    go.touch()  # both open the (empty) database at once, so they also race to migrate it
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    with HistoryStore(db_url) as store:
        runs = store.runs("shared")
        assert len(runs) == 40 and len({r.id for r in runs}) == 40
        assert {r.batch_id for r in runs} == {f"{w}-{i}" for w in "ab" for i in range(20)}
        assert all(set(r.metrics) == {"score", "score_normalized", "self_bleu"} for r in runs)
        assert store.schema_version() == LATEST


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterdiv.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_track_and_history_commands(tmp_path, subprocess_env):
    db = str(tmp_path / "cli.sqlite")
    env = {**subprocess_env, "CLUSTERDIV_HISTORY_DB": db}
    bad = run_cli(["track", "evol", "--min", "distinct_9=0.3"], env)
    assert bad.returncode == 2 and "unknown metric 'distinct_9'" in bad.stderr
    assert run_cli(["track", "evol", "--min", "score_normalized"], env).returncode == 2  # no =VALUE
    ok = run_cli(["track", "evol", "--owner", "dana", "--min", "score_normalized=0.45", "--max", "self_bleu=0.6",
                  "--drop-share", "0.25"], env)
    assert ok.returncode == 0, ok.stderr
    assert "score_normalized" in ok.stdout and ">= 0.45" in ok.stdout and "dana" in ok.stdout

    with HistoryStore(db) as store:
        for i, value in enumerate([0.5, 0.52, 0.5, 0.3]):
            store.record(make_report(value, self_bleu=0.3), dataset="evol", batch_id=f"b{i}",
                         recorded_at=T0 + timedelta(days=i))
    shown = run_cli(["history", "evol", "--format", "json"], env)
    assert shown.returncode == 0, shown.stderr
    payload = json.loads(shown.stdout)
    assert payload["tracking"]["owner"] == "dana" and payload["drop_share"] == 0.25
    trend = next(t for t in payload["trends"] if t["metric"] == "score_normalized")
    assert [p["batch_id"] for p in trend["points"] if p["drop"]] == ["b3"]
    assert [p["batch_id"] for p in trend["points"] if p["breach"]] == ["b3"]

    chart = tmp_path / "trend.png"
    table = run_cli(["history", "evol", "--chart", str(chart)], env)
    assert table.returncode == 0, table.stderr
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "score_normalized is below" not in table.stdout  # reasons use the value, not a template
    assert "score_normalized = 0.3 is below the minimum 0.45" in table.stdout
    assert any(ch in table.stdout for ch in "▁█")
    assert run_cli(["history", "nope"], env).returncode == 2


def test_score_warns_but_keeps_its_report_when_history_cannot_be_written(tmp_path):
    from io import StringIO

    from rich.console import Console

    from clusterdiv.history.record import record_from_cli

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    out = StringIO()
    run_id = record_from_cli(make_report(0.5), file=tmp_path / "b.jsonl", dataset=None, batch_id=None, owner=None,
                             tags=None, db=str(blocker / "h.sqlite"), console=Console(file=out, width=200))
    assert run_id is None and "warning: run not recorded in history" in out.getvalue()
    ok = record_from_cli(make_report(0.5), file=tmp_path / "week-3.jsonl", dataset=None, batch_id=None, owner=None,
                         tags=["x"], db=str(tmp_path / "h.sqlite"), console=Console(file=out, width=200))
    with HistoryStore(tmp_path / "h.sqlite") as store:
        [run] = store.runs("week-3")  # dataset name defaults to the file stem
    assert run.id == ok and run.batch_id == ("ab" * 32)[:12] and run.tags == ["x"]
