"""The anchoring commands keep the CLI's contract: one-line errors with exit 2 on bad input, reports on stdout.

Run as real subprocesses (like tests/test_cli.py) with the fake judge registered through
CLUSTERDIV_PLUGINS. Error cases fail before any model loads, so they cost only start-up time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpora import intent_corpus
from test_cli import run_cli, write_jsonl

GOOD_SPEC = """\
entries:
  - name: alarm
    description: setting an alarm or a wake-up call
    seeds: ["set an alarm for 7am", "wake me up at noon"]
  - name: weather
    description: the weather forecast, rain or snow
    seeds: ["will it rain in oslo today", "what's the weather in cairo tomorrow", "is it going to snow in boston"]
"""


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    rows = [{"id": f"b{i}", "text": t, "source": "real" if i % 3 == 0 else "synthetic", "intent": y}
            for i, (t, y) in enumerate(intent_corpus(["weather", "music", "joke"], 24, seed=1))]
    return write_jsonl(tmp_path / "batch.jsonl", rows)


def one_line_error(result, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("spec, message", [
    (GOOD_SPEC.replace("description: the weather", "descripton: the weather"),
     "entry 2 ('weather'): unknown field 'descripton'"),
    ("entries:\n  - name: alarm\n", "entry 1 ('alarm'): field 'description' is required"),
    ("entries:\n  - name: alarm\n    description: [unclosed\n", "not valid YAML"),
])
def test_bad_tail_specs_exit_2_naming_entry_and_field(batch, tmp_path, subprocess_env, spec, message):
    path = tmp_path / "tail.yaml"
    path.write_text(spec)
    line = one_line_error(run_cli(["audit-tail", str(batch), "--tail", str(path), "--judge", "embedding"],
                                  subprocess_env))
    assert message in line and "tail.yaml" in line


@pytest.mark.parametrize("command", [
    ["audit-tail", "{empty}", "--tail", "{spec}"],
    ["mix", "{empty}", "--label-field", "intent"],
    ["lineage", "{empty}", "--against", "{batch}"],
    ["drift", "{empty}", "--reference", "{batch}"],
])
def test_empty_batches_exit_2(batch, tmp_path, subprocess_env, command):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    spec = tmp_path / "tail.yaml"
    spec.write_text(GOOD_SPEC)
    args = [a.format(empty=empty, spec=spec, batch=batch) for a in command]
    line = one_line_error(run_cli(args, subprocess_env))
    assert "empty.jsonl" in line and "empty" in line


def test_option_mistakes_exit_2(batch, tmp_path, subprocess_env):
    assert "not both" in one_line_error(run_cli(
        ["audit-tail", str(batch), "--tail", "t.yaml", "--reference", str(batch)], subprocess_env))
    assert "'origin' field" in one_line_error(run_cli(
        ["mix", str(batch), "--source-field", "origin", "--label-field", "intent"], subprocess_env))
    assert "date like" in one_line_error(run_cli(
        ["drift", str(batch), "--reference", str(batch), "--expires-after", "soon"], subprocess_env))


def test_audit_tail_json_report(batch, tmp_path, subprocess_env):
    spec = tmp_path / "tail.yaml"
    spec.write_text(GOOD_SPEC)
    out = tmp_path / "report.json"
    result = run_cli(["audit-tail", str(batch), "--tail", str(spec), "--model", "fake/judge", "--id-field", "id",
                      "--format", "json", "--output", str(out)], subprocess_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["command"] == "audit-tail" and report["tail_audit"]["uncovered"] == ["alarm"]
    weather = next(e for e in report["tail_audit"]["entries"] if e["name"] == "weather")
    assert weather["count"] > 0 and all(i.startswith("b") for i in weather["example_ids"])
    assert report["timings"]["llm_calls"] > 0 and report["tail_audit"]["judge_model"] == "fake/judge"


def test_mix_by_label_as_json(batch, subprocess_env):
    result = run_cli(["mix", str(batch), "--label-field", "intent", "--target-real-share", "0.5",
                      "--format", "json"], subprocess_env)
    assert result.returncode == 0, result.stderr
    mix = json.loads(result.stdout)["mix"]
    assert (mix["overall"]["real"], mix["overall"]["synthetic"]) == (8, 16)
    assert mix["status"] == "too_synthetic" and mix["add_real_for_target"] == 8
