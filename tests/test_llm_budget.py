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

    rerun = run_cli(["score", str(fifty), "--model", "fake/metered", *CRITERIA, "--format", "json"], subprocess_env)
    assert rerun.returncode == 0, rerun.stderr
    assert calls_made(subprocess_env) == 50  # the 10 paid answers came from the cache
    timings = json.loads(rerun.stdout)["timings"]
    assert (timings["llm_calls"], timings["llm_cache_hits"], timings["llm_stopped"]) == (40, 10, None)
