"""Issue 30, rows 11, 14, 15, 26 and 29: what history accepts, what a read may create, one CLI idiom.

Each test goes through the real CLI (a subprocess with the fake LLM plugin) or a real server on
127.0.0.1, and asserts the exact line or status the row now gives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corpora import intent_corpus
from test_hostile_inputs import calls_made, one_error_line, run_cli, write_jsonl

from clusterdiv.history.models import DATASET_NAME_CHARS

FAKE = ["--model", "fake/echo", "--metrics", "none", "--no-progress"]


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    rows = [{"id": f"ex{i}", "text": t} for i, (t, _) in enumerate(intent_corpus(["weather", "alarm", "joke"], 4))]
    return write_jsonl(tmp_path / "batch.jsonl", rows)


def _error(result) -> str:
    """The single `error:` line of a run refused with exit 2 before any work."""
    one_error_line(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stdout == "", (result.stdout, result.stderr)
    return errors[0]


# ------------------------------------------------------------------ row 11: a rule that can fail, a real name


@pytest.mark.parametrize(("option", "rule", "message"), [
    ("--min", "score_normalized=-1", "score_normalized minimum -1 is outside the metric's range [0, 1]: "
                                     "the rule could never fail"),
    ("--max", "self_bleu=1.5", "self_bleu maximum 1.5 is outside the metric's range [0, 1]: the rule could never fail"),
    ("--min", "distinct_2=2", "distinct_2 minimum 2 is outside the metric's range [0, 1]: the rule could never pass"),
    ("--min", "vendi=0.5", "vendi minimum 0.5 is outside the metric's range [1, inf]: the rule could never fail"),
    ("--max", "embedding_mean_cosine=-2", "embedding_mean_cosine maximum -2 is outside the metric's range [-1, 1]: "
                                          "the rule could never pass"),
])
def test_track_refuses_a_bound_outside_the_metrics_range(option, rule, message, tmp_path, subprocess_env):
    env = {**subprocess_env, "CLUSTERDIV_HISTORY_DB": str(tmp_path / "h.sqlite")}
    assert _error(run_cli(["track", "ds", "--owner", "me", option, rule], env)) == f"error: {message}"
    assert not (tmp_path / "h.sqlite").exists()  # refused before the store is opened: nothing stored


def test_track_takes_bounds_on_the_ranges_edges_and_unbounded_ones(tmp_path, subprocess_env):
    env = {**subprocess_env, "CLUSTERDIV_HISTORY_DB": str(tmp_path / "h.sqlite")}
    edges = run_cli(["track", "ds", "--min", "score_normalized=0", "--max", "score=1", "--min", "vendi=1",
                     "--max", "compression_ratio=5", "--max", "density=40"], env)
    assert edges.returncode == 0, edges.stderr  # lax rules, but ones a batch can break
    assert ">= 1" in edges.stdout and "<= 40" in edges.stdout


@pytest.mark.parametrize("name", ["", "   "])
def test_track_refuses_an_empty_dataset_name(name, tmp_path, subprocess_env):
    env = {**subprocess_env, "CLUSTERDIV_HISTORY_DB": str(tmp_path / "h.sqlite")}
    line = _error(run_cli(["track", name, "--owner", "me"], env))
    assert line == f"error: an empty dataset name is not allowed: use {DATASET_NAME_CHARS}"
    assert not (tmp_path / "h.sqlite").exists()


# ------------------------------------------------------------------ row 26: one rule for dataset names


def test_a_dataset_name_with_a_slash_is_refused_by_track_score_and_check(batch, tmp_path, subprocess_env):
    env = {**subprocess_env, "CLUSTERDIV_HISTORY_DB": str(tmp_path / "h.sqlite")}
    expected = f"error: dataset name 'team/ds' is not allowed: use {DATASET_NAME_CHARS}"
    assert _error(run_cli(["track", "team/ds", "--owner", "me"], env)) == expected
    assert _error(run_cli(["score", str(batch), "--dataset", "team/ds", *FAKE], env)) == f"{expected} (--dataset)"
    assert _error(run_cli(["check", str(batch), "--dataset", "team/ds", *FAKE], env)) == f"{expected} (--dataset)"
    odd = write_jsonl(tmp_path / "week#3.jsonl", [{"text": "a b"}, {"text": "c d"}])  # the default: the stem
    line = _error(run_cli(["score", str(odd), *FAKE], env))
    assert line == (f"error: dataset name 'week#3' is not allowed: use {DATASET_NAME_CHARS} "
                    "(the name comes from the file name: pass --dataset NAME)")
    assert calls_made(env) == 0 and not (tmp_path / "h.sqlite").exists()


def test_the_service_refuses_a_dataset_name_its_history_route_could_not_reach(tmp_path):
    from service_server import ServerProcess

    server = ServerProcess(tmp_path, args=["--model", "fake/echo"]).start()
    try:
        with server.client() as client:
            answer = client.post("/v1/jobs", json={"kind": "score", "texts": ["a b", "c d"], "dataset": "team/ds"})
            assert answer.status_code == 422, answer.text
            [error] = answer.json()["detail"]
            assert error["loc"][-1] == "dataset"
            assert error["msg"] == f"Value error, dataset name 'team/ds' is not allowed: use {DATASET_NAME_CHARS}"
            upload = client.post("/v1/jobs/upload", files={"file": ("a.txt", b"one two\nthree four\n")},
                                 data={"dataset": "../x"})
            assert upload.status_code == 422 and "dataset name '../x' is not allowed" in upload.text
            assert client.get("/v1/jobs").json()["jobs"] == []
            assert client.get("/v1/datasets").json() == []
    finally:
        server.stop()
    assert "Traceback" not in server.log()


# ------------------------------------------------------------------ row 14: a read never creates a store


def test_read_only_commands_never_create_a_history_store(batch, tmp_path, subprocess_env):
    db = tmp_path / "nonexist" / "x.sqlite"
    shown = db.resolve()
    cases = {
        ("report", "deadbeef", "--db", str(db)): f"error: no history database at {shown}",
        ("history", "--history-db", str(db)): f"error: no history database at {shown}",
        ("history", "ds", "--history-db", str(db)): f"error: no history database at {shown}",
        ("track", "ds", "--history-db", str(db)): (
            f"error: dataset 'ds' is not tracked yet (no history database at {shown}); "
            "give --owner, --min, --max or --drop-share"),
        ("check", str(batch), "--dataset", "ds", "--history-db", str(db), *FAKE): (
            f"error: dataset 'ds' has no thresholds to check (no history database at {shown}); set them first, "
            "e.g. clusterdiv track ds --min score_normalized=0.3"),
    }
    for args, expected in cases.items():
        assert _error(run_cli(list(args), subprocess_env)) == expected, args
        assert not db.parent.exists(), args
    assert calls_made(subprocess_env) == 0


# ------------------------------------------------------------------ row 15: stdin has no name of its own


def test_stdin_needs_a_dataset_name_to_be_recorded(batch, tmp_path, subprocess_env):
    env = {**subprocess_env, "CLUSTERDIV_HISTORY_DB": str(tmp_path / "h.sqlite")}
    rows = batch.read_text()
    stdin = ["-", "--input-format", "jsonl", *FAKE]
    line = _error(run_cli(["score", *stdin], env, input=rows))
    assert line == "error: stdin has no name to record the run under: pass --dataset NAME, or --no-record"
    line = _error(run_cli(["check", *stdin, "--no-record"], env, input=rows))
    assert line == "error: stdin has no name to record the run under: pass --dataset NAME"
    assert calls_made(env) == 0 and not (tmp_path / "h.sqlite").exists()

    named = run_cli(["score", *stdin, "--dataset", "piped", "--format", "json"], env, input=rows)
    assert named.returncode == 0, named.stderr
    assert "recorded run 1 of dataset 'piped'" in named.stderr
    assert "Warning" not in named.stderr, named.stderr  # row 29: no library warnings on stderr
    listed = run_cli(["history", "--history-db", str(tmp_path / "h.sqlite")], env)
    assert listed.returncode == 0 and "piped" in listed.stdout and "│ -" not in listed.stdout


# ------------------------------------------------------------------ row 29: every command takes the shared options


@pytest.mark.parametrize("args", [
    ["audit-tail", "{missing}", "--tail", "{batch}"],
    ["mix", "{missing}"],
    ["lineage", "{missing}", "--against", "{batch}"],
    ["drift", "{missing}", "--reference", "{batch}"],
    ["select", "{missing}", "--budget", "2"],
    ["seeds", "{missing}", "--reference", "{batch}"],
    ["metrics", "{missing}"],
], ids=lambda a: a[0])
def test_every_batch_command_takes_no_progress(args, batch, tmp_path, subprocess_env):
    missing = tmp_path / "missing.jsonl"
    filled = [a.format(missing=missing, batch=batch) for a in args]
    result = run_cli([*filled, "--no-progress", "--cache-dir", str(tmp_path / "c")], subprocess_env)
    assert "No such option" not in result.stderr
    assert _error(result).startswith(f"error: {missing}: ")  # parsed; refused at the input, before any work
