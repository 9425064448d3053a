"""The CLI's contract, run as a real subprocess with the fake LLM registered via CLUSTERDIV_PLUGINS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpora import intent_corpus

REQUIRED_KEYS = {"n_samples", "n_clusters", "score", "score_normalized", "ci95", "clusters", "failed",
                 "config", "timings"}


def run_cli(args: list[str], env: dict[str, str], timeout: float = 240,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterdiv.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def cli_env(root: Path, *, cache: Path | None = None, extra_path: tuple[Path, ...] = (),
            history: bool = True) -> dict[str, str]:
    """Environment for CLI subprocesses (what the `subprocess_env` fixture gives, for module-scoped fixtures
    too): the fake plugin importable, an isolated cache, call log and history database under `root`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *map(str, extra_path), env.get("PYTHONPATH", "")])
    env["CLUSTERDIV_CACHE_DIR"] = str(cache if cache is not None else root / "cache")
    env["FAKE_LLM_CALL_LOG"] = str(root / "calls.log")
    if history:  # else the caller's own (the per-test `_isolated_history` database)
        env["CLUSTERDIV_HISTORY_DB"] = str(root / "history.sqlite")
    return env


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    rows = [{"id": f"ex{i}", "text": t, "intent": y}
            for i, (t, y) in enumerate(intent_corpus(["weather", "alarm", "music", "joke"], 24))]
    return write_jsonl(tmp_path / "batch.jsonl", rows)


def calls_made(env: dict[str, str]) -> int:
    log = Path(env["FAKE_LLM_CALL_LOG"])
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_json_contract_and_identical_rerun_with_zero_calls(corpus_file, subprocess_env):
    first = run_cli(["score", str(corpus_file), "--representation", "criteria", "--model", "fake/echo", "--format", "json", "--id-field", "id"],
                    subprocess_env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert REQUIRED_KEYS <= set(report)
    assert report["n_samples"] == 24 and report["failed"] == {"count": 0, "reasons": []}
    assert 0 < report["score"] <= 1 and report["ci95"][0] <= report["score"] <= report["ci95"][1]
    cluster = report["clusters"][0]
    assert {"size", "share", "example_ids", "criteria_summary"} <= set(cluster)
    assert all(i.startswith("ex") for i in cluster["example_ids"])
    assert report["config"]["model"] == "fake/echo" and len(report["config"]["prompt_sha256"]) == 64
    unique_texts = len({json.loads(line)["text"] for line in corpus_file.read_text().splitlines()})
    # Repeated texts are answered from the cache within the same run.
    assert report["timings"]["llm_calls"] == unique_texts == calls_made(subprocess_env)
    assert report["timings"]["llm_cache_hits"] == 24 - unique_texts

    second = run_cli(["score", str(corpus_file), "--representation", "criteria", "--model", "fake/echo", "--format", "json", "--id-field", "id"],
                     subprocess_env)
    again = json.loads(second.stdout)
    assert again["timings"]["llm_calls"] == 0 and again["timings"]["llm_cache_hits"] == 24
    assert again["timings"]["embedding_calls"] == 0
    assert calls_made(subprocess_env) == unique_texts
    report.pop("timings"), again.pop("timings")
    assert json.dumps(report, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_failed_examples_are_reported_not_dropped(tmp_path, subprocess_env):
    rows = [{"id": f"r{i}", "text": t + (" #junk" if i % 4 == 0 else "")}
            for i, (t, _) in enumerate(intent_corpus(["weather", "alarm"], 12))]
    path = write_jsonl(tmp_path / "b.jsonl", rows)
    result = run_cli(["score", str(path), "--representation", "criteria", "--model", "fake/picky", "--format", "json", "--id-field", "id"],
                     subprocess_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_input"] == 12 and report["n_samples"] == 9
    assert report["failed"]["count"] == 3
    assert [f["example_id"] for f in report["failed"]["reasons"]] == ["r0", "r4", "r8"]
    assert all("invalid answer after 3 attempts" in f["reason"] for f in report["failed"]["reasons"])


def test_all_examples_failing_is_an_error_not_a_score(tmp_path, subprocess_env):
    rows = [{"text": t} for t, _ in intent_corpus(["weather", "alarm"], 6)]
    path = write_jsonl(tmp_path / "b.jsonl", rows)
    result = run_cli(["score", str(path), "--representation", "criteria", "--model", "fake/junk", "--format", "json"], subprocess_env)
    assert result.returncode == 1 and result.stdout == ""
    assert "every example failed extraction" in result.stderr and "invalid answer" in result.stderr


def test_markdown_and_output_file(corpus_file, subprocess_env, tmp_path):
    out = tmp_path / "report.md"
    result = run_cli(["score", str(corpus_file), "--representation", "criteria", "--model", "fake/echo", "--format", "markdown",
                      "--output", str(out)], subprocess_env)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert text.startswith("# clusterdiv report") and "| cluster | size | share |" in text


@pytest.mark.parametrize("content, message", [
    ('{"text": "ok"}\n{"text": \n', "b.jsonl:2:"),
    ('{"text": "ok"}\n{"text": ""}\n', "b.jsonl:2:"),
    ('{"body": "ok"}\n', "--text-field"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, subprocess_env, content, message):
    path = tmp_path / "b.jsonl"
    path.write_text(content)
    result = run_cli(["score", str(path), "--representation", "criteria", "--model", "fake/echo"], subprocess_env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_file_and_unknown_criteria_exit_2(tmp_path, corpus_file, subprocess_env):
    assert run_cli(["score", str(tmp_path / "nope.jsonl")], subprocess_env).returncode == 2
    bad = run_cli(["score", str(corpus_file), "--representation", "criteria", "--model", "fake/echo", "--criteria", "mood"], subprocess_env)
    assert bad.returncode == 2 and "unknown criteria" in bad.stderr


def test_fatal_model_error_exits_1_and_debug_shows_traceback(corpus_file, subprocess_env):
    result = run_cli(["score", str(corpus_file), "--representation", "criteria", "--model", "fake/auth"], subprocess_env)
    assert result.returncode == 1 and "AuthenticationError" in result.stderr
    assert "Traceback" not in result.stderr
    debug = run_cli(["score", str(corpus_file), "--representation", "criteria", "--model", "fake/auth", "--debug"], subprocess_env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_skip_invalid_counts_what_was_skipped(tmp_path, subprocess_env):
    rows = "".join(json.dumps({"text": t}) + "\n" for t, _ in intent_corpus(["weather", "alarm"], 8))
    path = tmp_path / "b.jsonl"
    path.write_text(rows + "not json\n" + '{"text": ""}\n')
    result = run_cli(["score", str(path), "--representation", "criteria", "--model", "fake/echo", "--skip-invalid", "--format", "json"],
                     subprocess_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["skipped"]["count"] == 2 and report["n_samples"] == 8
    assert [r["line"] for r in report["skipped"]["rows"]] == [9, 10]


def test_cache_info_and_clear_commands(corpus_file, subprocess_env):
    run_cli(["score", str(corpus_file), "--representation", "criteria", "--model", "fake/echo", "--format", "json"], subprocess_env)
    info = json.loads(run_cli(["cache", "info"], subprocess_env).stdout)
    unique_texts = len({json.loads(line)["text"] for line in corpus_file.read_text().splitlines()})
    assert info["entries_by_kind"]["llm"] == unique_texts and info["entries_by_kind"]["embedding"] > 0
    cleared = run_cli(["cache", "clear", "--yes"], subprocess_env)
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert json.loads(run_cli(["cache", "info"], subprocess_env).stdout)["entries"] == 0


def test_killed_run_resumes_without_repeating_paid_calls(tmp_path, subprocess_env):
    rows = [{"text": f"{t} (variant {i})"} for i, (t, _) in enumerate(intent_corpus(["weather", "alarm"], 40))]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    env = dict(subprocess_env, FAKE_LLM_DELAY="0.1")
    proc = subprocess.Popen([sys.executable, "-m", "clusterdiv.cli", "score", str(path), "--representation", "criteria", "--model", "fake/slow",
                             "--concurrency", "1", "--format", "json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while calls_made(env) < 10 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: worst case
    proc.wait(timeout=30)
    paid_before_kill = calls_made(env)
    assert 10 <= paid_before_kill < 40

    result = run_cli(["score", str(path), "--representation", "criteria", "--model", "fake/slow", "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # Every answer written before the kill is reused (at most the one in flight is repeated).
    assert report["timings"]["llm_cache_hits"] >= paid_before_kill - 1
    assert report["timings"]["llm_calls"] == 40 - report["timings"]["llm_cache_hits"]
    texts_called = [json.loads(line)["text"] for line in Path(env["FAKE_LLM_CALL_LOG"]).read_text().splitlines()]
    assert len(texts_called) - len(set(texts_called)) <= 1
    assert report["n_samples"] == 40


def test_report_carries_named_set_metrics_and_reference_shares(corpus_file, tmp_path, subprocess_env):
    real_rows = [{"text": t} for t, _ in intent_corpus(["weather", "alarm", "music", "joke", "recipe",
                                                        "flight"], 30, seed=5)]
    real = write_jsonl(tmp_path / "real.jsonl", real_rows)
    result = run_cli(["score", str(corpus_file), "--representation", "criteria", "--model", "fake/echo", "--format", "json",
                      "--reference", str(real), "--alpha", "0.2"], subprocess_env)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    expected = {f"distinct_{n}" for n in range(1, 5)} | {
        "self_bleu", "compression_ratio", "embedding_mean_cosine", "vendi", "mauve", "precision", "recall",
        "cluster_shares"}
    assert expected <= set(metrics)
    assert all(0.0 <= metrics[name]["value"] <= 1.0 for name in ("distinct_2", "self_bleu", "mauve", "recall"))
    shares = metrics["cluster_shares"]
    assert shares["n_batch"] == 24 and shares["n_reference"] == 30
    assert abs(sum(c["batch_share"] for c in shares["clusters"]) - 1.0) < 0.2  # noise excluded
    # recipe/flight exist only in the reference, but the fake LLM's criteria split the modes into ones of 1-3
    # examples: a mode that small is absent from 24 batch examples by chance (p >= 0.5 for one real example),
    # so each is untestable, never missing (the old ratio rule called every one missing); modes.shares
    assert shares["alpha"] == 0.2 and shares["untestable"], shares
    absent = [c for c in shares["clusters"] if c["batch_count"] == 0]
    assert absent and all(c["flag"] == "untestable" and c["q_value"] is None for c in absent if c["reference_count"] <= 2)
    assert set(shares["under_covered"]) == {c["cluster_id"] for c in shares["clusters"] if c["flag"] in ("missing", "under")}


def test_lexical_metrics_need_no_model_and_no_torch(corpus_file, subprocess_env):
    code = (
        "import sys\n"
        "from clusterdiv import cli\n"
        f"sys.argv = ['clusterdiv', 'metrics', {str(corpus_file)!r}, '--metrics', 'lexical', '--format', 'json']\n"
        "try:\n    cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules and 'litellm' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload["metrics"]) == {"distinct_1", "distinct_2", "distinct_3", "distinct_4", "self_bleu",
                                       "compression_ratio"}


def test_metrics_command_refers_vendi_normalized_to_its_reference_size(corpus_file, subprocess_env):
    """`metrics` takes the same --reference-size as `score`: at the default 100 a small file's
    size-free Vendi is n/a with its reason; at a size the file holds it has a value."""
    def vendi_normalized(*extra: str) -> dict:
        result = run_cli(["metrics", str(corpus_file), "--metrics", "vendi_normalized", "--format", "json", *extra],
                         subprocess_env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["metrics"]["vendi_normalized"]

    default = vendi_normalized()
    assert default["value"] is None and "fewer than the reference size 100" in default["details"]["reason"]
    at_10 = vendi_normalized("--reference-size", "10")
    assert at_10["details"]["reference_size"] == 10 and 0.1 <= at_10["value"] <= 1.0


def test_unknown_metric_name_is_bad_input(corpus_file, subprocess_env):
    result = run_cli(["metrics", str(corpus_file), "--metrics", "lexicall"], subprocess_env)
    assert result.returncode == 2 and "unknown metric" in result.stderr


def test_library_entry_point_takes_flat_settings(cache, fake_llm):
    import clusterdiv

    texts = [t for t, _ in intent_corpus(["weather", "alarm", "music"], 12)]
    report = clusterdiv.score(texts, model="fake/echo", seed=3, metrics="lexical", cache=cache)
    assert report.config.model == "fake/echo" and report.config.seed == 3
    assert report.n_samples == 12 and "distinct_2" in report.metrics and "vendi" not in report.metrics
    assert json.loads(report.to_json())["score"] == report.score
