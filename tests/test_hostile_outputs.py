"""Issue 30, rows 2, 16 and 17: output paths. Every command's output options are checked before any
work (`clusterdiv.cli.common.check_outputs`): never an input of the run (the same file, a symlink
or a hard link to it), never a directory, a read-only path or a path whose folder is missing; each
refusal is exit 2 with one line and leaves the input's bytes as they were. `select --out X.gz` writes
gzip that the ordinary reader reads back.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from test_hostile_inputs import (
    CLI,
    _read_only_mount_available,
    calls_made,
    one_error_line,
    run_cli,
    write_jsonl,
)

FAKE = ["--model", "fake/echo"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A tiny batch (with a source field, for select), a reference, a tail spec, a prompt file, a db."""
    rows = [{"id": f"b{i}", "text": f"request number {i} about the weather in paris",
             "source": "real" if i % 2 else "synthetic"} for i in range(6)]
    spec = tmp_path / "tail.yaml"
    spec.write_text("- name: rare\n  description: a rare request\n", encoding="utf-8")
    prompt = tmp_path / "prompt.yaml"
    prompt.write_text("criteria:\n  - name: topic\n    description: the topic\n", encoding="utf-8")
    db = tmp_path / "history.sqlite"
    db.write_bytes(b"")
    return {"batch": write_jsonl(tmp_path / "batch.jsonl", rows),
            "reference": write_jsonl(tmp_path / "real.jsonl", [{"text": f"real text {i}"} for i in range(6)]),
            "other": write_jsonl(tmp_path / "other.jsonl", [{"text": f"other text {i}"} for i in range(6)]),
            "tail": spec, "prompt": prompt, "db": db}


# (command line with OUT where the output goes, the flag, which input OUT is made to be)
Case = tuple[Callable[[dict[str, Path], str], list[str]], str, str]
CASES: dict[str, Case] = {
    "score --output": (lambda f, o: ["score", str(f["batch"]), "--output", o, "--metrics", "lexical",
                                     "--no-record"], "--output", "batch"),
    "score --assignments": (lambda f, o: ["score", str(f["batch"]), "--assignments", o, "--metrics", "lexical",
                                          "--no-record"], "--assignments", "batch"),
    "score --output over --reference": (lambda f, o: ["score", str(f["batch"]), "--reference", str(f["reference"]),
                                                      "--output", o, "--no-record"], "--output", "reference"),
    "score --output over --prompt-file": (lambda f, o: ["score", str(f["batch"]), "--prompt-file", str(f["prompt"]),
                                                        "--output", o, "--no-record"], "--output", "prompt"),
    "score --output over the history db": (lambda f, o: ["score", str(f["batch"]), "--history-db", str(f["db"]),
                                                         "--output", o], "--output", "db"),
    "select --out": (lambda f, o: ["select", str(f["batch"]), "--budget", "2", "--out", o], "--out", "batch"),
    "select --out over --reference": (lambda f, o: ["select", str(f["batch"]), "--budget", "2", "--reference",
                                                    str(f["reference"]), "--out", o], "--out", "reference"),
    "seeds --out over --reference": (lambda f, o: ["seeds", str(f["batch"]), "--reference", str(f["reference"]),
                                                   "--out", o], "--out", "reference"),
    "seeds --out over --against": (lambda f, o: ["seeds", str(f["batch"]), "--reference", str(f["reference"]),
                                                 "--against", str(f["other"]), "--out", o], "--out", "other"),
    "check --summary": (lambda f, o: ["check", str(f["batch"]), "--summary", o, "--metrics", "lexical"],
                        "--summary", "batch"),
    "compare --output": (lambda f, o: ["compare", str(f["batch"]), str(f["other"]), "--output", o,
                                       "--metrics", "lexical"], "--output", "other"),
    "compare --chart": (lambda f, o: ["compare", str(f["batch"]), str(f["other"]), "--chart", o,
                                      "--metrics", "lexical"], "--chart", "batch"),
    "explore --html": (lambda f, o: ["explore", str(f["batch"]), "--html", o], "--html", "batch"),
    "explore --json over --reference": (lambda f, o: ["explore", str(f["batch"]), "--reference", str(f["reference"]),
                                                      "--json", o], "--json", "reference"),
    "audit-tail --output over --tail": (lambda f, o: ["audit-tail", str(f["batch"]), "--tail", str(f["tail"]),
                                                      "--output", o], "--output", "tail"),
    "mix --output": (lambda f, o: ["mix", str(f["batch"]), "--output", o], "--output", "batch"),
    "lineage --output over --against": (lambda f, o: ["lineage", str(f["batch"]), "--against", str(f["other"]),
                                                      "--output", o], "--output", "other"),
    "drift --output over --reference": (lambda f, o: ["drift", str(f["batch"]), "--reference", str(f["reference"]),
                                                      "--output", o], "--output", "reference"),
    "history --chart over the db": (lambda f, o: ["history", "ds", "--history-db", str(f["db"]), "--chart", o],
                                    "--chart", "db"),
    "report --html over the db": (lambda f, o: ["report", "deadbeef", "--db", str(f["db"]), "--html", o],
                                  "--html", "db"),
}
NO_LLM = {"history", "report", "lineage"}  # commands without --model


def _refused(args: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    """The one error line of a run refused before any work (no model call, nothing on stdout)."""
    if args[0] not in NO_LLM:
        args = [*args, *FAKE]
    result = run_cli(args, env, timeout=120, cwd=cwd)
    one_error_line(result)
    assert result.stdout == "" and calls_made(env) == 0, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def _snapshot(files: dict[str, Path]) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in files.items()}


# ------------------------------------------------------------------ row 2: an output is never an input


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_an_output_naming_an_input_is_refused_before_any_work(case, files, tmp_path, subprocess_env):
    build, flag, target = CASES[case]
    before = _snapshot(files)
    (tmp_path / "sub").mkdir()
    spelled = f"sub/../{files[target].name}"  # the same file, spelled another way (from the working directory)
    line = _refused(build(files, spelled), subprocess_env, cwd=tmp_path)
    assert line == f"error: cannot write to {spelled}: it would overwrite the input {files[target]} ({flag})"
    assert _snapshot(files) == before


@pytest.mark.parametrize("link", ["symlink", "hard link"])
@pytest.mark.parametrize("case", ["score --output", "seeds --out over --reference"])
def test_a_link_to_an_input_is_the_input(case, link, files, tmp_path, subprocess_env):
    build, flag, target = CASES[case]
    before = _snapshot(files)
    alias = tmp_path / "alias.jsonl"
    if link == "symlink":
        alias.symlink_to(files[target])
    else:
        os.link(files[target], alias)
    line = _refused(build(files, str(alias)), subprocess_env)
    assert line == f"error: cannot write to {alias}: it would overwrite the input {files[target]} ({flag})"
    assert _snapshot(files) == before


@pytest.mark.parametrize(("args", "first", "second"), [
    (["score", "{batch}", "--output", "{out}", "--assignments", "{out}", "--metrics", "lexical", "--no-record"],
     "--output", "--assignments"),
    (["explore", "{batch}", "--html", "{out}", "--json", "{out}"], "--html", "--json"),
    (["compare", "{batch}", "{other}", "--output", "{out}", "--chart", "{out}", "--metrics", "lexical"],
     "--output", "--chart"),
])
def test_two_outputs_of_one_run_may_not_name_one_file(args, first, second, files, tmp_path, subprocess_env):
    out = tmp_path / "out.jsonl"
    before = _snapshot(files)
    filled = [a.format(batch=files["batch"], other=files["other"], out=out) for a in args]
    line = _refused(filled, subprocess_env)
    assert line == f"error: {first} and {second} both name {out}; give each output its own file"
    assert _snapshot(files) == before and not out.exists()


def test_stdin_is_no_file_to_compare_and_dev_stdout_stays_an_output(files, subprocess_env):
    """`-` as input and `/dev/stdout` as output are not files a write could destroy: the run goes on."""
    result = run_cli(["score", "-", "--input-format", "jsonl", "--output", "/dev/stdout", "--metrics", "lexical",
                      "--format", "json", "--no-record", *FAKE], subprocess_env, timeout=300,
                     input=files["batch"].read_text())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n_samples"] == 6


# ------------------------------------------------------------------ row 16: unwritable outputs


@pytest.mark.parametrize("case", ["score --output", "score --assignments", "select --out", "check --summary",
                                  "history --chart over the db"])
def test_an_output_that_is_a_directory_is_refused_before_any_work(case, files, tmp_path, subprocess_env):
    build, flag, _ = CASES[case]
    folder = tmp_path / "reports"
    folder.mkdir()
    before = _snapshot(files)
    line = _refused(build(files, str(folder)), subprocess_env)
    assert line == f"error: cannot write to {folder}: it is a directory ({flag})"
    assert _snapshot(files) == before


@pytest.mark.parametrize("case", ["score --assignments", "select --out", "history --chart over the db"])
def test_an_output_whose_folder_is_missing_is_refused_before_any_work(case, files, tmp_path, subprocess_env):
    build, flag, _ = CASES[case]
    out = tmp_path / "no" / "such" / "out.jsonl"
    before = _snapshot(files)
    line = _refused(build(files, str(out)), subprocess_env)
    assert line == f"error: cannot write to {out}: its folder {out.parent} does not exist ({flag})"
    assert _snapshot(files) == before and not (tmp_path / "no").exists()


def test_an_output_under_a_file_is_refused(files, subprocess_env):
    out = files["batch"] / "report.json"
    before = _snapshot(files)
    line = _refused(CASES["score --output"][0](files, str(out)), subprocess_env)
    assert line == f"error: cannot write to {out}: {files['batch']} is not a folder (--output)"
    assert _snapshot(files) == before


@pytest.mark.skipif(not _read_only_mount_available(), reason="needs unshare -m (root) or a non-root user")
@pytest.mark.parametrize("existing", [True, False], ids=["read-only file", "read-only folder"])
@pytest.mark.parametrize("case", ["score --assignments", "history --chart over the db"])
def test_a_read_only_output_is_refused_before_any_work(case, existing, files, tmp_path, subprocess_env):
    build, flag, _ = CASES[case]
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked / "out.jsonl"
    if existing:
        out.write_text("keep me\n", encoding="utf-8")
    before = _snapshot(files)
    args = [*CLI, *build(files, str(out))]
    if args[3] not in NO_LLM:
        args += FAKE
    if os.geteuid() == 0:  # root ignores file modes: a read-only bind mount of the folder instead
        script = f'mount --bind -o ro "{locked}" "{locked}" && exec "$@"'
        command = ["unshare", "-m", "sh", "-c", script, "sh", *args]
    else:
        if existing:
            out.chmod(0o444)
        locked.chmod(0o555)
        command = args
    try:
        result = subprocess.run(command, env={**subprocess_env, "COLUMNS": "250"},
                                capture_output=True, text=True, timeout=120)
    finally:
        locked.chmod(0o755)
    one_error_line(result)
    reason = "it is read-only" if existing else f"its folder {locked} is read-only"
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: cannot write to {out}: {reason} ({flag})"]
    assert result.stdout == "" and calls_made(subprocess_env) == 0
    assert _snapshot(files) == before
    if existing:
        assert out.read_text() == "keep me\n"
    else:
        assert not out.exists()


# ------------------------------------------------------------------ row 17: a .gz name is gzip


def test_select_out_gz_is_gzip_the_reader_reads_back(files, tmp_path, subprocess_env):
    from clusterdiv.io.corpus import load_corpus

    out = tmp_path / "sel.jsonl.gz"
    before = _snapshot(files)
    result = run_cli(["select", str(files["batch"]), "--budget", "3", "--id-field", "id", "--out", str(out),
                      "--format", "json", *FAKE], subprocess_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["out"] == str(out)
    data = out.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    rows = [json.loads(line) for line in gzip.decompress(data).decode("utf-8").splitlines()]
    batch = {r["id"]: r for r in map(json.loads, files["batch"].read_text().splitlines())}
    assert len(rows) == 3 and all(batch[r["id"]] == r for r in rows)  # the records, every field kept
    corpus = load_corpus(out, id_field="id")
    assert [e.id for e in corpus.examples] == [r["id"] for r in rows]
    assert [e.text for e in corpus.examples] == [r["text"] for r in rows]
    assert _snapshot(files) == before


def test_select_out_parquet_gz_is_refused_before_any_work(files, tmp_path, subprocess_env):
    out = tmp_path / "sel.parquet.gz"
    line = _refused(["select", str(files["batch"]), "--budget", "2", "--out", str(out)], subprocess_env)
    assert line == (f"error: {out}: Parquet is compressed already and is not read back from gzip; "
                    "name the file .parquet, or .jsonl.gz")
    assert not out.exists()
