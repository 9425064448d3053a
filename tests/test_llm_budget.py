"""Issue 34 items 1-3, through the real CLI: a plan before any paid call (`--dry-run`), a budget
(`--max-calls`, `--max-cost`, `--partial`) and the spend in the report.

The fake providers (tests/fake_llm.py) log every call they receive, so "no call" and "exactly N
calls" are counted at the provider, not read back from clusterdiv's own statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpora import intent_corpus
from test_cli import calls_made, run_cli, write_jsonl

INTENTS = ["weather", "alarm", "music", "joke"]


def distinct_rows(n: int, seed: int = 0) -> list[dict]:
    """n examples with n different texts (a repeated text is one call, which would blur the counts)."""
    texts = list(dict.fromkeys(t for t, _ in intent_corpus(INTENTS, 4 * n, seed=seed)))
    assert len(texts) >= n
    return [{"id": f"e{i}", "text": t} for i, t in enumerate(texts[:n])]


@pytest.fixture
def thousand(tmp_path: Path) -> Path:
    rows = distinct_rows(50)  # the templates give ~100 distinct texts; numbered copies make 1000 distinct ones
    rows = [{"id": f"e{k}", "text": f"{r['text']} (case {k})"} for k, r in enumerate(rows * 20)]
    return write_jsonl(tmp_path / "thousand.jsonl", rows)


@pytest.fixture
def fifty(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "fifty.jsonl", distinct_rows(50, seed=3))


CRITERIA = ["--representation", "criteria", "--no-record"]


def test_dry_run_calls_no_model_and_counts_the_misses_a_real_run_then_makes(thousand, subprocess_env):
    # fake/auth fails on any call: a dry run that sent one would exit non-zero
    dry = run_cli(["score", str(thousand), "--model", "fake/auth", *CRITERIA, "--dry-run", "--format", "json"],
                  subprocess_env)
    assert dry.returncode == 0, dry.stderr
    assert calls_made(subprocess_env) == 0
    plan = json.loads(dry.stdout)
    step = plan["steps"][0]
    assert step["stage"] == "criteria" and step["calls"] == 1000 and step["cached"] == 0
    assert step["cost_usd_max"] is None  # litellm prices no fake/ model: "unknown price"
    assert plan["complete"] is False  # the modes need these answers before any later step can be planned

    real = run_cli(["score", str(thousand), "--model", "fake/metered", *CRITERIA, "--format", "json"],
                   subprocess_env)
    assert real.returncode == 0, real.stderr
    report = json.loads(real.stdout)
    assert calls_made(subprocess_env) == step["calls"] == report["timings"]["llm_calls"]
    # the estimate is litellm's counter on the prompts as sent; the provider counts what it received
    assert report["timings"]["prompt_tokens"] == pytest.approx(step["prompt_tokens"], rel=0.15)
    assert report["timings"]["completion_tokens"] <= step["completion_tokens_max"]

    again = run_cli(["score", str(thousand), "--model", "fake/auth", *CRITERIA, "--dry-run"], subprocess_env)
    assert again.returncode == 0, again.stderr
    assert "dry run: no model was called" in again.stdout and "1000" in again.stdout  # every answer cached now


def test_max_calls_refuses_a_plan_over_budget_before_any_call(fifty, subprocess_env):
    refused = run_cli(["score", str(fifty), "--model", "fake/echo", *CRITERIA, "--max-calls", "10"], subprocess_env)
    assert refused.returncode == 2
    assert calls_made(subprocess_env) == 0
    line = refused.stderr.strip()
    assert "needs 50 calls" in line and "10 allowed" in line and line.endswith("(--max-calls)")


def test_partial_budget_pays_exactly_its_calls_caches_them_and_a_rerun_resumes(fifty, subprocess_env):
    partial = run_cli(["score", str(fifty), "--model", "fake/metered", *CRITERIA, "--max-calls", "10", "--partial",
                       "--format", "json"], subprocess_env)
    assert partial.returncode == 0, partial.stderr
    assert calls_made(subprocess_env) == 10
    timings = json.loads(partial.stdout)["timings"]
    assert timings["llm_calls"] == 10 and timings["llm_not_asked"] == 40
    assert timings["llm_stopped"] == "stopped at its budget of 10 calls"
    assert timings["prompt_tokens"] > 0 and timings["llm_unpriced_calls"] == 10

    table = run_cli(["score", str(fifty), "--model", "fake/metered", "--representation", "criteria",
                     "--max-calls", "0", "--partial"], subprocess_env)  # recorded by default: it must not be
    assert "run not recorded in history" in table.stderr
    assert table.returncode == 0, table.stderr
    assert calls_made(subprocess_env) == 10  # a budget of nothing asks nothing
    assert "stopped at its budget of 0 calls" in table.stdout and "40 examples not asked" in table.stdout

    rerun = run_cli(["score", str(fifty), "--model", "fake/metered", "--representation", "criteria",
                     "--dataset", "budgeted", "--format", "json"], subprocess_env)
    assert rerun.returncode == 0, rerun.stderr
    assert calls_made(subprocess_env) == 50  # the 10 paid answers came from the cache
    timings = json.loads(rerun.stdout)["timings"]
    assert (timings["llm_calls"], timings["llm_cache_hits"], timings["llm_stopped"]) == (40, 10, None)

    # the completed run is recorded with its spend, shown by `history`
    shown = run_cli(["history", "budgeted", "--format", "json"], subprocess_env)
    assert shown.returncode == 0, shown.stderr
    [run] = json.loads(shown.stdout)["runs"]
    assert (run["llm_calls"], run["prompt_tokens"], run["completion_tokens"]) == (
        40, timings["prompt_tokens"], timings["completion_tokens"])
    assert run["llm_cost_usd"] is None  # fake/metered has no price: unknown, not $0
    table = run_cli(["history", "budgeted"], {**subprocess_env, "COLUMNS": "200"})
    assert "LLM spend" in table.stdout and "40 calls" in table.stdout and "price unknown" in table.stdout


def test_a_history_database_from_before_spend_is_upgraded_with_its_runs_spend(tmp_path):
    import sqlalchemy as sa

    from clusterdiv.history.migrations import LATEST, migrate
    from clusterdiv.history.store import HistoryStore, make_engine, resolve_history_url

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = make_engine(resolve_history_url(url))
    assert migrate(engine, target=4) == [1, 2, 3, 4]
    old_report = json.dumps({"timings": {"llm_calls": 7, "prompt_tokens": 700, "completion_tokens": 90}})
    with engine.begin() as conn:  # as clusterdiv 4 wrote them: no spend columns
        conn.execute(sa.text("INSERT INTO datasets (name, created_at) VALUES ('legacy', '2026-01-01')"))
        conn.execute(sa.text(
            "INSERT INTO runs (dataset_id, batch_id, recorded_at, config_json, report_json) "
            "VALUES (1, 'old', '2026-01-01', '{}', :r), (1, 'text-only', '2026-01-02', '{}', '{}')"),
            {"r": old_report})
    engine.dispose()
    with HistoryStore(url) as store:
        assert store.schema_version() == LATEST
        old, text_only = store.runs("legacy")
    assert (old.llm_calls, old.prompt_tokens, old.completion_tokens, old.llm_cost_usd) == (7, 700, 90, None)
    assert old.spend() == "7 calls, 790 tokens, price unknown"
    assert (text_only.llm_calls, text_only.spend()) == (None, "")


def test_a_service_job_status_carries_its_spend(tmp_path):
    from service_server import ServerProcess, wait_for_job

    texts = [r["text"] for r in distinct_rows(12, seed=5)]
    proc = ServerProcess(tmp_path, args=["--representation", "criteria", "--model", "fake/metered"]).start()
    try:
        with proc.client() as client:
            job = client.post("/v1/jobs", json={"kind": "score", "texts": texts,
                                                "options": {"metrics": "none", "bootstrap": 20}}).json()
            done = wait_for_job(client, job["id"])
            report = client.get(done["links"]["report"]).raise_for_status().json()
    finally:
        proc.stop()
    assert done["status"] == "succeeded", done
    spend, timings = done["spend"], report["timings"]
    assert spend["llm_calls"] == timings["llm_calls"] == 12
    assert spend["prompt_tokens"] == timings["prompt_tokens"] > 0
    assert spend["llm_unpriced_calls"] == 12 and spend["llm_cost_usd"] == 0 and spend["llm_stopped"] is None
