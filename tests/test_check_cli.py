"""`score` recording and the `check` gate, run as the CLI a CI job would run (fake/echo LLM).

The gate's contract is its exit code: 0 pass, 3 breach, 2 bad input. A CI step branches on it, so
each is asserted together with what the user reads (the reason per breach, the job summary).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from corpora import INTENT_TEMPLATES, intent_corpus

from clusterdiv.history import HistoryStore

# the criteria representation: these gate tests were calibrated on the fake model's criteria
FAST = ["--representation", "criteria", "--model", "fake/echo", "--metrics", "lexical", "--no-progress"]


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterdiv.cli", *args], env=env, capture_output=True,
                          text=True, timeout=240)


def write_batch(path: Path, n_intents: int, seed: int) -> Path:
    rows = intent_corpus(list(INTENT_TEMPLATES)[:n_intents], 30, seed=seed)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the module: answers are keyed by content, so sharing only saves time."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def env(subprocess_env: dict[str, str], tmp_path: Path, shared_cache: Path) -> dict[str, str]:
    return {**subprocess_env, "CLUSTERDIV_HISTORY_DB": str(tmp_path / "gate.sqlite"),
            "CLUSTERDIV_CACHE_DIR": str(shared_cache)}


def test_check_passes_a_diverse_batch_and_fails_a_collapsed_one_with_exit_3(tmp_path, env):
    diverse = write_batch(tmp_path / "diverse.jsonl", 12, seed=1)
    collapsed = write_batch(tmp_path / "collapsed.jsonl", 2, seed=2)
    tracked = run_cli(["track", "prompts", "--owner", "eve", "--min", "score_normalized=0.15",
                       "--max", "self_bleu=0.95"], env)
    assert tracked.returncode == 0, tracked.stderr

    passed = run_cli(["check", str(diverse), "--dataset", "prompts", "--tag", "pr-1", *FAST], env)
    assert passed.returncode == 0, passed.stderr
    assert "PASS" in passed.stdout and "breach:" not in passed.stderr

    summary = tmp_path / "step_summary.md"
    failed = run_cli(["check", str(collapsed), "--dataset", "prompts", "--summary", str(summary),
                      "--format", "json", *FAST], env)
    assert failed.returncode == 3, failed.stderr
    gate = json.loads(failed.stdout)["gate"]
    [breach] = [c for c in gate["checks"] if not c["ok"]]
    assert breach["metric"] == "score_normalized" and breach["value"] < 0.15
    assert f"breach: score_normalized = {breach['value']:.4g} is below the minimum 0.15" in failed.stderr
    text = summary.read_text()
    assert text.startswith("## :x: clusterdiv check `prompts`: FAILED (1 breached)")
    assert "| score_normalized |" in text and "**breach**" in text and "is below the minimum 0.15" in text

    with HistoryStore(env["CLUSTERDIV_HISTORY_DB"]) as store:
        runs = store.runs("prompts")
    assert [(r.source, r.gate_status) for r in runs] == [(str(diverse), "passed"), (str(collapsed), "breached")]
    assert runs[0].tags == ["pr-1"] and runs[0].owner == "eve" and gate["run_id"] == runs[1].id


def test_check_rejects_bad_input_with_exit_2_before_scoring(tmp_path, env):
    batch = write_batch(tmp_path / "batch.jsonl", 4, seed=0)
    untracked = run_cli(["check", str(batch), *FAST], env)
    assert untracked.returncode == 2
    assert "dataset 'batch' has no thresholds to check" in untracked.stderr
    assert "clusterdiv track batch --min" in untracked.stderr
    assert run_cli(["track", "batch", "--min", "score_normalized=0.1"], env).returncode == 0
    missing = run_cli(["check", str(tmp_path / "nope.jsonl"), "--dataset", "batch", *FAST], env)
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr
    bad_metric = run_cli(["check", str(batch), *FAST[:4], "--metrics", "distinct_9"], env)
    assert bad_metric.returncode == 2
    with HistoryStore(env["CLUSTERDIV_HISTORY_DB"]) as store:
        assert store.count_runs() == 0  # nothing was scored, nothing recorded


def test_score_records_every_run_unless_told_not_to(tmp_path, env):
    batch = write_batch(tmp_path / "evol-week1.jsonl", 6, seed=3)
    first = run_cli(["score", str(batch), "--format", "json", "--tag", "a", "--tag", "b", "--owner", "fay", *FAST],
                    env)
    assert first.returncode == 0, first.stderr
    assert "recorded run 1 of dataset 'evol-week1'" in first.stderr
    report = json.loads(first.stdout)
    skipped = run_cli(["score", str(batch), "--no-record", *FAST], env)
    assert skipped.returncode == 0 and "recorded" not in skipped.stderr, skipped.stderr
    with HistoryStore(env["CLUSTERDIV_HISTORY_DB"]) as store:
        [run] = store.runs("evol-week1")  # dataset defaults to the file stem
        stored = store.report_json(run.id)
    assert run.batch_id == report["content_hash"][:12] and run.tags == ["a", "b"] and run.owner == "fay"
    assert run.value("score_normalized") == report["score_normalized"]
    assert {name: run.value(name) for name in report["metrics"]} == {
        name: m["value"] for name, m in report["metrics"].items()}
    assert stored["metrics"] == report["metrics"] and stored["content_hash"] == report["content_hash"]

