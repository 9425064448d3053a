"""Issue 32, `audit-tail`: an uncalibrated judge is never trusted, and "decided by" is true to the numbers.

A 50-example batch judged with the default --judge-top 50 left no batch example outside the judged top
to serve as a negative control, so a judge that says yes to everything was trusted and called 5 absent
entries covered. Here every batch is smaller than --judge-top: the controls must come from the reference
or from the spec's other entries, or the judge is uncalibrated. Through the real CLI (and the service),
with the fake LLM: `fake/yesman` says yes to every membership question, `fake/judge` answers from the
description's keywords (tests/fake_llm.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpora import intent_corpus
from service_server import ServerProcess, wait_for_job
from test_cli import cli_env, run_cli, write_jsonl

from clusterdiv.reports.report import Report
from clusterdiv.tasks.anchoring import render_markdown
from clusterdiv.tasks.anchoring.tail import DEFAULT_JUDGE_TOP, MAX_CONTROL_YES, MIN_CONTROLS

PRESENT = ["weather", "music", "joke", "recipe"]
N_BATCH = 32  # fewer than --judge-top: no batch example is left outside the judged top
assert N_BATCH < DEFAULT_JUDGE_TOP

WEATHER = {"name": "weather", "description": "the weather forecast, rain or snow",
           "seeds": ["will it rain in oslo today", "what's the weather in cairo tomorrow", "is it going to snow in lima"]}
ALARM = {"name": "alarm", "description": "setting an alarm or a wake-up call",
         "seeds": ["set an alarm for 7am", "wake me up at noon", "please set my alarm to 6am"]}
TIMER = {"name": "timer", "description": "starting a countdown timer",
         "seeds": ["set a timer for 10 minutes", "start a 5 minute countdown", "count down 20 minutes for my tea"]}
DIRECTIONS = {"name": "directions", "description": "directions or a route to somewhere"}  # no seeds


def spec_file(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps({"entries": entries}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """One isolated cache and call log for the module's CLI runs (as conftest's subprocess_env, shared)."""
    return cli_env(tmp_path_factory.mktemp("issue32_tail"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("issue32_tail_files")
    rows = intent_corpus(PRESENT, N_BATCH, seed=1)
    reference = intent_corpus(PRESENT, 120, seed=3) + intent_corpus(["alarm", "timer"], 8, seed=4)
    # the alarm entry's description shares a word with the batch's joke requests: the keyword judge says
    # yes to them, the embedding rule (alarm seeds) does not
    alarm_joke = {**ALARM, "description": "setting an alarm or a wake-up call with a joke"}
    return {
        "batch": write_jsonl(root / "batch.jsonl", [{"id": f"b{i}", "text": t, "intent": y}
                                                    for i, (t, y) in enumerate(rows)]),
        "reference": write_jsonl(root / "reference.jsonl", [{"id": f"r{i}", "text": t, "intent": y}
                                                            for i, (t, y) in enumerate(reference)]),
        "absent": spec_file(root / "absent.json", [ALARM, TIMER, WEATHER, DIRECTIONS]),
        "disagree": spec_file(root / "disagree.json", [alarm_joke, TIMER, WEATHER]),
        "single": spec_file(root / "single.json", [WEATHER]),
    }


def audit(files: dict[str, Path], env: dict[str, str], *args: str) -> tuple[int, dict, list[str]]:
    result = run_cli(["audit-tail", str(files["batch"]), "--id-field", "id", "--format", "json", *args], env)
    assert result.returncode in (0, 3) and result.stdout, result.stderr
    gate = [line for line in result.stderr.splitlines() if line.startswith("gate:")]
    return result.returncode, json.loads(result.stdout), gate


@pytest.fixture(scope="module")
def yes_spec(files, env):
    return audit(files, env, "--tail", str(files["absent"]), "--model", "fake/yesman", "--gate")


@pytest.fixture(scope="module")
def yes_reference(files, env):
    return audit(files, env, "--reference", str(files["reference"]), "--label-field", "intent", "--tail-size", "2",
                 "--model", "fake/yesman")


@pytest.fixture(scope="module")
def honest(files, env):
    return audit(files, env, "--tail", str(files["disagree"]), "--model", "fake/judge")


def entries(report: dict) -> dict[str, dict]:
    return {e["name"]: e for e in report["tail_audit"]["entries"]}


def test_a_yes_to_everything_judge_on_a_small_batch_is_not_trusted_and_covers_nothing_absent(yes_spec):
    code, report, gate = yes_spec
    section = report["tail_audit"]
    # the controls came from the spec's other entries' seeds, and the judge said yes to every one
    assert section["judge_trusted"] is False and section["judge_control_yes_rate"] == 1.0
    assert "seeds of the spec's other entries" in section["judge_controls"]
    assert "says yes to anything" in section["judge_trust_reason"]
    got = entries(report)
    assert all(got[name]["llm_count"] == N_BATCH for name in got)  # what the judge claimed
    # absent seeded entries: the embedding rule decides, and finds them missing
    for name in ("alarm", "timer"):
        assert got[name]["flag"] == "uncovered" and got[name]["count"] == 0
        assert got[name]["decided_by"] == "embedding"
    # an absent entry without seeds: only the untrusted judge could vouch for it, so it is undecided
    assert got["directions"]["flag"] == "undecided" and got["directions"]["count"] == 0
    assert got["directions"]["decided_by"].startswith("undecided")
    assert section["undecided"] == ["directions"] and section["n_undecided"] == 1
    assert got["weather"]["flag"] == "ok" and got["weather"]["decided_by"] == "embedding"
    # --gate fails on both verdicts, after writing the report
    assert code == 3
    assert gate == ["gate: 2 of 4 tail entries uncovered: alarm, timer",
                    "gate: 1 of 4 tail entries undecided (no seeds, LLM judge not trusted): directions"]
    markdown = render_markdown(Report.model_validate(report))
    assert markdown.splitlines()[0].startswith("**UNCOVERED: 2 of 4")
    assert "UNDECIDED: 1 of 4 tail entries" in markdown and "LLM judge not trusted" in markdown
    assert "- judge: NOT trusted: it said yes to" in markdown


def test_with_a_reference_the_controls_come_from_its_other_labels(yes_reference):
    _, report, _ = yes_reference
    section = report["tail_audit"]
    assert {e["name"] for e in section["entries"]} == {"alarm", "timer"}
    assert "the reference's examples of other labels" in section["judge_controls"]
    assert "seeds of the spec" not in section["judge_controls"] and "batch examples" not in section["judge_controls"]
    assert section["judge_trusted"] is False and section["judge_control_yes_rate"] == 1.0
    assert sorted(section["uncovered"]) == ["alarm", "timer"]
    assert all(e["count"] == 0 and e["decided_by"] == "embedding" for e in section["entries"])


def test_an_honest_judge_is_still_trusted_on_a_small_batch(honest):
    _, report, _ = honest
    section = report["tail_audit"]
    assert section["judge_trusted"] is True
    assert section["judge_control_yes_rate"] is not None and section["judge_control_yes_rate"] <= MAX_CONTROL_YES
    assert "seeds of the spec's other entries" in section["judge_controls"]
    assert section["judge_trust_reason"].startswith("it said yes to")
    got = entries(report)
    assert got["weather"]["flag"] == "ok" and got["weather"]["count"] >= 2
    assert sorted(section["uncovered"]) == ["alarm", "timer"]


def test_decided_by_says_which_signal_decided_when_they_disagree(honest):
    _, report, _ = honest
    got = entries(report)
    alarm = got["alarm"]  # the judge said yes to the joke requests; the embedding rule matched none
    assert alarm["llm_count"] > 0 and alarm["embedding_count"] == 0 and alarm["count"] == 0
    assert alarm["decided_by"] == ("both, but llm and embedding disagree: the embedding rule decided "
                                   f"(it rejected {alarm['llm_count']} llm yes; both say yes to 0)")
    for entry in got.values():
        # "agree" only when the two signals counted the same examples
        agree = entry["llm_count"] == entry["embedding_count"] == entry["count"]
        assert ("(llm and embedding agree)" in entry["decided_by"]) == agree, entry
        assert ("disagree" in entry["decided_by"]) != agree, entry
        assert f"both say yes to {entry['count']})" in entry["decided_by"] or agree


def test_with_nothing_to_calibrate_on_even_an_honest_judge_is_not_trusted(files, env):
    # one entry, no reference, every batch example judged: no negative control exists at all
    _, report, _ = audit(files, env, "--tail", str(files["single"]), "--model", "fake/judge")
    section = report["tail_audit"]
    assert section["judge_trusted"] is False and section["judge_control_yes_rate"] is None
    assert section["judge_trust_reason"].startswith("uncalibrated: 0 negative controls judged")
    assert f"at least {MIN_CONTROLS} needed" in section["judge_trust_reason"]
    assert section["judge_controls"].startswith("none")
    weather = section["entries"][0]
    assert weather["flag"] == "ok" and weather["decided_by"] == "embedding"
    # "all covered" says it rests on the embedding rule, not on the judge
    first = render_markdown(Report.model_validate(report)).splitlines()[0]
    assert first.startswith("all 1 tail entries are covered") and "embedding rule alone" in first


def test_the_service_reports_an_untrusted_judge_too(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("issue32_service")
    server = ServerProcess(workdir, args=["--model", "fake/yesman"]).start()
    try:
        texts = [t for t, _ in intent_corpus(PRESENT, 24, seed=2)]
        with server.client() as client:
            job = client.post("/v1/jobs", json={"kind": "audit-tail", "texts": texts,
                                                "tail": [ALARM, TIMER, WEATHER]})
            assert job.status_code == 202, job.text
            done = wait_for_job(client, job.json()["id"])
            assert done["status"] == "succeeded", done
            section = client.get(done["links"]["report"]).json()["tail_audit"]
            markdown = client.get(done["links"]["markdown"]).text
    finally:
        server.stop()
    assert section["judge_trusted"] is False and "seeds of the spec's other entries" in section["judge_controls"]
    assert sorted(section["uncovered"]) == ["alarm", "timer"]
    assert "LLM judge not trusted" in markdown
