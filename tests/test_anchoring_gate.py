"""`--gate`: the anchoring checks' bad verdicts are an exit status (3, as `check` on a breach), so CI can
act on them (issue 32's gating row). Through the real CLI; the report is still written first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpora import intent_corpus
from test_anchoring_cli import GOOD_SPEC
from test_cli import run_cli, write_jsonl


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    rows = [{"id": f"b{i}", "text": t, "source": "real" if i % 3 == 0 else "synthetic", "intent": y}
            for i, (t, y) in enumerate(intent_corpus(["weather", "music", "joke"], 24, seed=1))]
    return write_jsonl(tmp_path / "batch.jsonl", rows)


def gate_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("gate:")]


def test_audit_tail_gate_exits_3_on_an_uncovered_entry_after_writing_the_report(batch, tmp_path, subprocess_env):
    spec = tmp_path / "tail.yaml"
    spec.write_text(GOOD_SPEC)  # 'alarm' is absent from the weather/music/joke batch
    args = ["audit-tail", str(batch), "--tail", str(spec), "--judge", "embedding", "--format", "json"]
    plain = run_cli(args, subprocess_env)
    assert plain.returncode == 0, plain.stderr
    gated = run_cli([*args, "--gate"], subprocess_env)
    assert gated.returncode == 3, gated.stderr
    assert json.loads(gated.stdout)["tail_audit"]["uncovered"] == ["alarm"]  # the report came first
    assert gate_lines(gated) == ["gate: 1 of 2 tail entries uncovered: alarm"]


def test_mix_gate_exits_3_off_target_or_dominated_and_0_on_target(batch, tmp_path, subprocess_env):
    args = ["mix", str(batch), "--label-field", "intent", "--format", "json", "--gate"]
    off = run_cli([*args, "--target-real-share", "0.5"], subprocess_env)  # 8 real of 24, two groups all synthetic
    assert off.returncode == 3, off.stderr
    assert gate_lines(off) == ["gate: synthetic data dominates 2 of 3 groups",
                               "gate: the mix is too synthetic for its target"]
    # every intent a third real: on target, no group dominated
    rows = [{"id": f"m{i}", "text": t, "source": "real" if (i // 3) % 3 == 0 else "synthetic", "intent": y}
            for i, (t, y) in enumerate(intent_corpus(["weather", "music", "joke"], 27, seed=1))]
    even = write_jsonl(tmp_path / "even.jsonl", rows)
    on = run_cli(["mix", str(even), "--label-field", "intent", "--format", "json", "--gate",
                  "--target-real-share", "0.33", "--tolerance", "0.05"], subprocess_env)
    assert on.returncode == 0, on.stderr
    assert gate_lines(on) == [] and json.loads(on.stdout)["mix"]["status"] == "on_target"


def test_lineage_gate_exits_3_on_copied_examples_and_0_on_fresh_ones(tmp_path, subprocess_env):
    texts = [t for t, _ in intent_corpus(["weather", "music"], 20, seed=2)]
    other = [t for t, _ in intent_corpus(["joke", "alarm"], 10, seed=3)]  # intents the earlier batch never had
    earlier = write_jsonl(tmp_path / "earlier.jsonl", [{"id": f"e{i}", "text": t} for i, t in enumerate(texts)])
    copied = write_jsonl(tmp_path / "copied.jsonl", [{"id": f"c{i}", "text": t} for i, t in enumerate(texts[:10])])
    fresh = write_jsonl(tmp_path / "fresh.jsonl", [{"id": f"f{i}", "text": t} for i, t in enumerate(other)])
    seeded = run_cli(["lineage", str(copied), "--against", str(earlier), "--format", "json", "--gate"],
                     subprocess_env)
    assert seeded.returncode == 3, seeded.stderr
    report = json.loads(seeded.stdout)["lineage"]
    assert report["recursion_seeded"] == 10
    assert gate_lines(seeded) == ["gate: 10 of 10 batch examples are recursion-seeded"]
    clean = run_cli(["lineage", str(fresh), "--against", str(earlier), "--format", "json", "--gate"],
                    subprocess_env)
    assert json.loads(clean.stdout)["lineage"]["recursion_seeded"] == 0, clean.stdout
    assert clean.returncode == 0 and gate_lines(clean) == []


def test_drift_gate_exits_3_on_a_stale_batch(batch, subprocess_env):
    args = ["drift", str(batch), "--reference", str(batch), "--cluster-on", "none", "--format", "json", "--gate"]
    expired = run_cli([*args, "--expires-after", "2020-01-01", "--as-of", "2020-06-01"], subprocess_env)
    assert expired.returncode == 3, expired.stderr
    assert json.loads(expired.stdout)["drift"]["verdict"] == "stale"
    assert len(gate_lines(expired)) == 1 and gate_lines(expired)[0].startswith("gate: the batch is stale: ")
    current = run_cli([*args, "--expires-after", "2020-01-01", "--as-of", "2019-06-01"], subprocess_env)
    assert json.loads(current.stdout)["drift"]["verdict"] != "stale"
    assert current.returncode == 0 and gate_lines(current) == []
