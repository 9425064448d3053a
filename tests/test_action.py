"""The GitHub Action (issue 33 item 4): action.yml's check step, as written there, run with bash on the
demo data the way the runner runs it (inputs as env vars, GITHUB_STEP_SUMMARY and GITHUB_OUTPUT files):
a breach gives exit-code 3 and the markdown report in the job summary; a hostile input stays text."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))


def check_step() -> dict:
    return next(s for s in ACTION["runs"]["steps"] if s.get("id") == "check")


def test_the_action_is_composite_and_passes_inputs_through_env_only():
    assert ACTION["runs"]["using"] == "composite" and ACTION["inputs"]["batch"]["required"] is True
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step  # no input spliced into a script


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("action")
    demo = ROOT / "clusterdiv" / "io" / "demo"
    shutil.copy(demo / "real.jsonl", work / "batch.jsonl")
    return work


def run_step(work: Path, env: dict[str, str], **inputs: str) -> tuple[int, str, str]:
    summary, output = work / "summary.md", work / "output.txt"
    summary.write_text(""), output.write_text("")
    step_env = {**env, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output),
                **{k: inputs.get(k, "") for k in ("CD_BATCH", "CD_DATASET", "CD_HISTORY_DB", "CD_REFERENCE", "CD_ARGS")}}
    r = subprocess.run(["bash", "-c", check_step()["run"]], cwd=work, env=step_env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr  # the step records the status; the Gate step exits with it
    return int(output.read_text().split("exit-code=")[1]), summary.read_text(), r.stderr


def test_the_check_step_gates_and_writes_the_summary(tracked, subprocess_env):
    env = {**subprocess_env, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    db = tracked / "history.sqlite"
    made = run_cli(["track", "batch", "--min", "score_normalized=0.99", "--history-db", str(db)], env)
    assert made.returncode == 0, made.stderr
    code, summary, _ = run_step(tracked, env, CD_BATCH="batch.jsonl", CD_HISTORY_DB=str(db), CD_ARGS="--metrics none")
    assert code == 3
    assert "clusterdiv check `batch`: FAILED (1 breached)" in summary
    hostile = run_step(tracked, env, CD_BATCH="batch.jsonl; touch pwned", CD_HISTORY_DB=str(db))
    assert hostile[0] == 2 and not (tracked / "pwned").exists()
