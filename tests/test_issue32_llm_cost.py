"""Issue 32, "silent LLM cost": every LLM step says what it is about to pay for before its first call,
long steps print progress lines when stderr is not a terminal, `mix` without labels makes no LLM call,
and the explorer's naming time is in `timings`.

Through the real CLI (stderr is a pipe here, as in a CI log) with the fake LLM; one cache per module,
so the warm runs reuse the cold runs' answers. CLUSTERDIV_PROGRESS_SECONDS=0 lets every advance print a
line, so the fake model's fast steps still show them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import TESTS_DIR
from corpora import intent_corpus
from test_anchoring_cli import GOOD_SPEC
from test_cli import run_cli, write_jsonl

ANNOUNCE = re.compile(r"^LLM: (?P<model>\S+) · (?P<stage>\w+) · (?P<calls>\d+) calls? \((?P<cached>\d+) cached\) · "
                      r"(?P<time>time unknown|about [\w ]+)(?: · .*)?$")
PROGRESS = re.compile(r"^(?P<stage>\w+) (?P<done>\d+)/(?P<total>\d+) \((?P<percent>\d+)%\)")


def announcements(stderr: str) -> list[re.Match]:
    return [m for m in map(ANNOUNCE.match, stderr.splitlines()) if m]


def progress_lines(stderr: str, stage: str) -> list[re.Match]:
    return [m for m in map(PROGRESS.match, stderr.splitlines()) if m and m["stage"] == stage]


def calls_logged(env: dict[str, str]) -> list[dict]:
    log = Path(env["FAKE_LLM_CALL_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("llm_cost")
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), out.get("PYTHONPATH", "")])
    out.update(CLUSTERDIV_CACHE_DIR=str(root / "cache"), FAKE_LLM_CALL_LOG=str(root / "calls.log"),
               CLUSTERDIV_HISTORY_DB=str(root / "history.sqlite"), CLUSTERDIV_PROGRESS_SECONDS="0")
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [{"id": f"b{i}", "text": t, "source": "real" if i % 3 == 0 else "synthetic", "intent": y}
            for i, (t, y) in enumerate(intent_corpus(["weather", "alarm", "music", "joke"], 24, seed=3))]
    return write_jsonl(tmp_path_factory.mktemp("llm_cost_data") / "batch.jsonl", rows)


@pytest.fixture(scope="module")
def cold_and_warm(batch: Path, env: dict[str, str]):
    args = ["score", str(batch), "--representation", "criteria", "--model", "fake/echo", "--format", "json",
            "--no-record"]
    cold = run_cli(args, env)
    sent = len(calls_logged(env))
    warm = run_cli(args, env)
    return cold, sent, warm


def test_one_announcement_before_extraction_with_the_calls_actually_sent(cold_and_warm, env):
    cold, sent, _ = cold_and_warm
    assert cold.returncode == 0, cold.stderr
    said = announcements(cold.stderr)
    assert len(said) == 1, cold.stderr
    line = said[0]
    assert line["model"] == "fake/echo" and line["stage"] == "criteria"
    timings = json.loads(cold.stdout)["timings"]
    # the calls announced are the cache misses the run then sent, and the rest were cached
    assert int(line["calls"]) == sent == timings["llm_calls"] > 0
    assert int(line["calls"]) + int(line["cached"]) == json.loads(cold.stdout)["n_input"]
    assert line["time"] == "time unknown"  # no measured rate for a model other than the bundled one
    lines = cold.stderr.splitlines()
    first_progress = next(i for i, text in enumerate(lines) if PROGRESS.match(text))
    assert lines.index(line.string) < first_progress  # said before the step, not after


def test_a_warm_rerun_announces_nothing(cold_and_warm, env):
    _, sent, warm = cold_and_warm
    assert warm.returncode == 0, warm.stderr
    assert announcements(warm.stderr) == [] and "LLM:" not in warm.stderr
    assert json.loads(warm.stdout)["timings"]["llm_calls"] == 0 and len(calls_logged(env)) == sent


def test_progress_lines_on_stderr_off_a_terminal(cold_and_warm):
    cold, _, _ = cold_and_warm
    for stage in ("extract", "embed"):
        seen = progress_lines(cold.stderr, stage)
        assert len(seen) >= 2, (stage, cold.stderr)  # while it runs, not only at the end
        done = [int(m["done"]) for m in seen]
        assert done == sorted(done) and seen[-1]["percent"] == "100" and seen[-1]["done"] == seen[-1]["total"]
    assert any(" left" in m.string for m in progress_lines(cold.stderr, "extract"))  # the time left


def test_no_progress_keeps_the_announcement_but_draws_no_lines(batch, tmp_path, env):
    fresh = {**env, "CLUSTERDIV_CACHE_DIR": str(tmp_path / "cache"), "FAKE_LLM_CALL_LOG": str(tmp_path / "calls.log")}
    result = run_cli(["score", str(batch), "--representation", "criteria", "--model", "fake/echo", "--metrics",
                      "none", "--format", "json", "--no-record", "--no-progress"], fresh)
    assert result.returncode == 0, result.stderr
    assert len(announcements(result.stderr)) == 1 and not progress_lines(result.stderr, "extract")
    assert int(announcements(result.stderr)[0]["calls"]) == len(calls_logged(fresh))


def test_mix_without_labels_groups_by_text_modes_and_calls_no_llm(batch, env):
    before = len(calls_logged(env))
    # fake/auth fails every call it gets: the run succeeding means it got none
    result = run_cli(["mix", str(batch), "--model", "fake/auth", "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    assert len(calls_logged(env)) == before and announcements(result.stderr) == []
    report = json.loads(result.stdout)
    mix = report["mix"]
    assert mix["group_by"].startswith("text modes of the whole mix") and "no LLM" in mix["group_by"]
    assert mix["n_groups"] >= 2 and sum(g["n"] for g in mix["groups"]) == report["n_input"]
    assert report["timings"]["llm_calls"] == 0
    asked = run_cli(["mix", str(batch), "--model", "fake/echo", "--cluster-on", "criteria", "--format", "json"], env)
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["mix"]["group_by"].startswith("semantic clusters")


def test_explore_llm_naming_is_announced_and_timed(batch, tmp_path, env):
    data = tmp_path / "exploration.json"
    result = run_cli(["explore", str(batch), "--json", str(data), "--naming-model", "fake/echo",
                      "--metrics", "none", "--no-downloads"], env)
    assert result.returncode == 0, result.stderr
    said = [m for m in announcements(result.stderr) if m["stage"] == "naming"]
    assert len(said) == 1, result.stderr
    exploration = json.loads(data.read_text())
    named = sum(1 for c in exploration["clusters"] if c["named_by"] == "llm")
    timings = exploration["report"]["timings"]
    assert int(said[0]["calls"]) == timings["llm_calls"] >= named > 0
    assert timings["naming_s"] > 0 and timings["total_s"] >= timings["naming_s"] + timings["embed_s"]
    assert progress_lines(result.stderr, "name")[-1]["percent"] == "100"


def test_audit_tail_announces_the_judge_and_reports_progress(batch, tmp_path, env):
    spec = tmp_path / "tail.yaml"
    spec.write_text(GOOD_SPEC)
    result = run_cli(["audit-tail", str(batch), "--tail", str(spec), "--model", "fake/judge", "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    said = announcements(result.stderr)
    assert [m["stage"] for m in said] == ["judge"], result.stderr
    assert int(said[0]["calls"]) == json.loads(result.stdout)["timings"]["llm_calls"] > 0
    for stage in ("embed", "judge"):
        assert progress_lines(result.stderr, stage)[-1]["percent"] == "100", (stage, result.stderr)


def test_lineage_reports_progress(batch, tmp_path, env):
    earlier = write_jsonl(tmp_path / "earlier.jsonl",
                          [{"text": t} for t, _ in intent_corpus(["weather", "alarm"], 10, seed=4)])
    result = run_cli(["lineage", str(batch), "--against", str(earlier), "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    seen = progress_lines(result.stderr, "embed")
    assert seen and seen[-1]["done"] == seen[-1]["total"] == str(24 + 10), result.stderr


# ------------------------------------------------------------------ in process: the line formats


def test_line_progress_throttles_and_says_the_time_left():
    from clusterdiv.core.progress import LineProgress, format_duration

    written: list[str] = []
    quiet = LineProgress(written.append, interval=3600)
    quiet.start("extract", 4)
    for _ in range(4):
        quiet.advance("extract")
    quiet.finish("extract")
    assert len(written) == 1 and written[0].startswith("extract 4/4 (100%) · ")  # the final line only
    written.clear()
    chatty = LineProgress(written.append, interval=0)
    chatty.start("judge", 4)
    chatty.advance("judge", 2, cached=True)
    chatty.advance("judge")
    chatty.finish("judge")
    assert written[0].startswith("judge 2/4 (50%), 2 cached") and "left" not in written[0]  # nothing computed yet
    assert written[1].startswith("judge 3/4 (75%), 2 cached · ") and written[1].endswith(" left")
    assert written[-1].startswith("judge 3/4 (75%), 2 cached · ")  # an interrupted stage says where it stopped
    assert [format_duration(s) for s in (0.4, 59, 60, 200, 3725)] == ["0 s", "59 s", "1 min", "3 min 20 s", "1 h 2 min"]


def test_the_bundled_model_gets_an_expected_time_and_a_priced_model_a_cost(cache):
    from clusterdiv.core.progress import LineProgress
    from clusterdiv.core.prompts import PromptTemplate, prompts_dir
    from clusterdiv.llm.local import SECONDS_PER_CALL
    from clusterdiv.llm.structured import LLMSettings, announce_calls, llm_cache_key

    prompt = PromptTemplate.load(prompts_dir() / "extract_criteria.yaml")
    schema = prompt.output_model
    inputs = [{"text": f"request number {i}"} for i in range(300)]
    said: list[str] = []
    reporter = LineProgress(said.append)
    local = LLMSettings(model="local/smollm2")
    cache.set(llm_cache_key(prompt, inputs[0], schema, settings=local), {"value": None, "error": "x", "attempts": 1})
    assert announce_calls(reporter, "criteria", prompt, inputs, schema, settings=local, cache=cache) == 299
    from clusterdiv.core.progress import format_duration

    assert said == [f"LLM: local/smollm2 · criteria · 299 calls (1 cached) · about "
                    f"{format_duration(299 * SECONDS_PER_CALL)}"]
    priced = LLMSettings(model="gpt-4o-mini")
    announce_calls(reporter, "criteria", prompt, inputs, schema, settings=priced, cache=cache)
    assert re.search(r"· time unknown · (at most \$\d+\.\d\d|under \$0\.01)$", said[-1]), said[-1]
    # nothing to say when no call will be made, and nothing asked of a reporter that takes no announcements
    assert announce_calls(reporter, "criteria", prompt, inputs[:1], schema, settings=local, cache=cache) == 0
    assert announce_calls(None, "criteria", prompt, inputs, schema, settings=local, cache=cache) is None
    assert len(said) == 2 and cache.hits["llm"] == 0  # the look ahead is not counted as the run's reads
