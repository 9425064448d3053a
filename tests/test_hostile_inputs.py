"""Issue 13: the adversarial probe made permanent. One test per row of the issue's table, through
the real CLI (a subprocess, with the fake LLM registered through the plugin path) or a real server
on 127.0.0.1; each asserts the status or message the row now gives.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpora import intent_corpus

CLI = [sys.executable, "-m", "clusterdiv.cli"]
LLM = ["--representation", "criteria"]  # modes from LLM criteria: the runs below exercise the LLM cache


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    env = {**env, "COLUMNS": "250"}  # usage errors are boxed by rich; keep each on one line
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def calls_made(env: dict[str, str]) -> int:
    log = Path(env["FAKE_LLM_CALL_LOG"])
    return len(log.read_text().splitlines()) if log.exists() else 0


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The CLI's contract for bad input: exit 2 and exactly one `error:` line, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    errors = [line for line in lines if line.startswith("error:") or "Error:" in line or "Invalid value" in line]
    assert errors, result.stderr
    return result.stderr


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    rows = [{"id": f"ex{i}", "text": t} for i, (t, _) in enumerate(intent_corpus(["weather", "alarm", "joke"], 9))]
    return write_jsonl(tmp_path / "batch.jsonl", rows)


def score_json(path: Path, env: dict[str, str], *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = run_cli(["score", str(path), "--model", "fake/echo", *LLM, "--metrics", "lexical", "--format", "json",
                      "--no-record", *extra], env)
    assert result.returncode == 0, result.stderr
    return result, json.loads(result.stdout)


# ------------------------------------------------------------------------------ track / history


@pytest.mark.parametrize("rule", ["score_normalized=nan", "score_normalized=inf", "self_bleu=-inf"])
def test_track_threshold_must_be_finite(rule, subprocess_env):
    option = "--max" if rule.startswith("self_bleu") else "--min"
    result = run_cli(["track", "ds", "--owner", "me", option, rule], subprocess_env)
    assert "thresholds must be finite numbers" in one_error_line(result)
    # nothing was stored: the dataset is still untracked
    shown = run_cli(["track", "ds"], subprocess_env)
    assert shown.returncode == 2 and "not tracked yet" in shown.stderr


def test_track_window_zero_is_refused(subprocess_env):
    assert run_cli(["track", "ds", "--owner", "me", "--drop-share", "0.2"], subprocess_env).returncode == 0
    result = run_cli(["track", "ds", "--window", "0"], subprocess_env)
    err = one_error_line(result)
    assert "Invalid value for '--window': Input should be greater than or equal to 1" in err


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_broken_history_db_is_one_line_naming_the_file(damage, tmp_path, subprocess_env):
    db = tmp_path / "history.sqlite"
    env = {**subprocess_env, "CLUSTERDIV_HISTORY_DB": str(db)}
    if damage == "garbage":
        db.write_bytes(b"this is not a database at all\n" * 200)
    else:
        assert run_cli(["track", "ds", "--owner", "me", "--min", "score=0.1"], env).returncode == 0
        size = db.stat().st_size
        with open(db, "r+b") as handle:  # keep the header, lose the pages the schema points to
            handle.truncate(size // 3)
        for side in (Path(str(db) + "-wal"), Path(str(db) + "-shm")):
            side.unlink(missing_ok=True)
    result = run_cli(["track", "ds"], env)
    err = one_error_line(result)
    assert str(db) in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ cache


def test_garbage_cache_db_is_one_line_and_cache_clear_recovers(small_corpus, cache_dir, subprocess_env):
    cache_dir.mkdir(parents=True)
    (cache_dir / "cache.db").write_bytes(b"\x00garbage" * 4096)
    for args in (["cache", "info"], ["score", str(small_corpus), "--model", "fake/echo", "--no-record"]):
        err = one_error_line(run_cli(args, subprocess_env))
        assert str(cache_dir / "cache.db") in err and "cache clear" in err
        assert len(err.strip().splitlines()) == 1
    cleared = run_cli(["cache", "clear", "--yes"], subprocess_env)
    assert cleared.returncode == 0, cleared.stderr
    assert "removed the corrupt cache database" in cleared.stdout
    info = run_cli(["cache", "info"], subprocess_env)
    assert info.returncode == 0 and json.loads(info.stdout)["entries"] == 0
    assert calls_made(subprocess_env) == 0


def test_corrupted_cache_values_are_misses_recomputed_and_counted(small_corpus, cache_dir, subprocess_env):
    _, first = score_json(small_corpus, subprocess_env)
    paid = first["timings"]["llm_calls"]
    with sqlite3.connect(cache_dir / "cache.db") as conn:
        llm_key = conn.execute("SELECT key FROM Cache WHERE key LIKE 'llm:%' ORDER BY key LIMIT 1").fetchone()[0]
        emb_key = conn.execute("SELECT key FROM Cache WHERE key LIKE 'embedding:%' ORDER BY key LIMIT 1").fetchone()[0]
        conn.execute("UPDATE Cache SET value = ? WHERE key = ?", ('{"value": {"intent": ', llm_key))
        conn.execute("UPDATE Cache SET value = ? WHERE key = ?", (b"\x01\x02\x03", emb_key))
    result, again = score_json(small_corpus, subprocess_env)
    assert again["timings"]["llm_calls"] == 1  # exactly the damaged answer was asked again
    assert again["timings"]["embedding_calls"] >= 1
    assert "2 damaged cache entries" in result.stderr and str(cache_dir) in result.stderr
    assert calls_made(subprocess_env) == paid + 1
    first.pop("timings"), again.pop("timings")
    assert first == again  # the recomputed answers are the same answers


class _Evil:
    """What an attacker with write access to a shared cache would plant: a pickle that runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _llm_key(text: str, model: str = "fake/echo") -> str:
    from clusterdiv.core.prompts import PromptTemplate
    from clusterdiv.llm.structured import LLMSettings, llm_cache_key

    prompt = PromptTemplate.load()
    return llm_cache_key(prompt, {"text": text}, prompt.output_model, settings=LLMSettings(model=model))


def test_crafted_pickle_in_a_shared_cache_never_executes(small_corpus, cache_dir, tmp_path, subprocess_env):
    import diskcache

    texts = [json.loads(line)["text"] for line in small_corpus.read_text().splitlines()]
    marker = tmp_path / "PWNED"
    legacy_answer = {"value": {"intent": "legacy intent", "topic": "legacy", "task": "question",
                               "style": "casual"}, "error": None, "attempts": 1}
    with diskcache.Cache(str(cache_dir)) as plain:  # the old, pickling store, as clusterdiv < 0.1.1 wrote it
        plain.set(_llm_key(texts[0]), _Evil(marker))
        plain.set(_llm_key(texts[1]), legacy_answer)  # an honest old entry: migrated, not paid again
    assert not marker.exists()
    result, report = score_json(small_corpus, subprocess_env, "--id-field", "id")
    assert not marker.exists(), "the planted pickle ran"
    unique = len(set(texts))
    assert report["timings"]["llm_calls"] == unique - 1  # all but the migrated legacy answer
    assert "damaged cache entries" in result.stderr
    with sqlite3.connect(cache_dir / "cache.db") as conn:
        modes = {mode for (mode,) in conn.execute("SELECT mode FROM Cache")}
    assert 4 not in modes  # diskcache MODE_PICKLE: nothing pickled is left or written
    info = json.loads(run_cli(["cache", "info"], subprocess_env).stdout)
    assert info["entries_by_kind"]["llm"] == unique


def _read_only_mount_available() -> bool:
    if os.geteuid() != 0:
        return True  # chmod is enough for a normal user
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _read_only_mount_available(), reason="needs unshare -m (root) or a non-root user")
def test_read_only_cache_with_every_answer_present_works_with_a_warning(small_corpus, cache_dir, subprocess_env):
    _, first = score_json(small_corpus, subprocess_env)
    paid = calls_made(subprocess_env)
    args = [*CLI, "score", str(small_corpus), "--model", "fake/echo", *LLM, "--metrics", "lexical",
            "--format", "json", "--no-record"]
    if os.geteuid() == 0:  # root ignores file modes: a read-only bind mount of the cache folder instead
        script = f'mount --bind -o ro "{cache_dir}" "{cache_dir}" && exec "$@"'
        command = ["unshare", "-m", "sh", "-c", script, "sh", *args]
    else:
        for p in [cache_dir, *cache_dir.rglob("*")]:
            p.chmod(0o500 if p.is_dir() else 0o400)
        command = args
    result = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "read-only" in result.stderr and str(cache_dir) in result.stderr
    again = json.loads(result.stdout)
    assert again["timings"]["llm_calls"] == 0 and calls_made(subprocess_env) == paid
    first.pop("timings"), again.pop("timings")
    assert first == again


# ------------------------------------------------------------------------------ options


@pytest.mark.parametrize(("option", "value", "bound"), [
    ("--sample", "0", "greater than or equal to 1"), ("--reference-size", "1", "greater than or equal to 2"),
    ("--concurrency", "0", "greater than or equal to 1"), ("--concurrency", "1000", "less than or equal to 256"),
    ("--seed", "-1", "greater than or equal to 0"),
])
def test_out_of_range_options_exit_2_naming_option_and_bound(option, value, bound, small_corpus, subprocess_env):
    result = run_cli(["score", str(small_corpus), "--model", "fake/echo", option, value], subprocess_env)
    err = one_error_line(result)
    assert f"Invalid value for '{option}': Input should be {bound}" in err
    assert calls_made(subprocess_env) == 0  # refused before any (paid) work


def test_jinja_syntax_error_in_prompt_file_names_file_and_line(small_corpus, tmp_path, subprocess_env):
    from clusterdiv.core.prompts import prompts_dir

    original = (prompts_dir() / "extract_criteria.yaml").read_text()
    assert "{{ text }}" in original
    broken = tmp_path / "mine.yaml"
    broken.write_text(original.replace("{{ text }}", "{{ text "))
    expected_line = next(i for i, line in enumerate(broken.read_text().splitlines(), 1) if "{{ text " in line)
    started = time.monotonic()
    result = run_cli(["score", str(small_corpus), "--model", "local/smollm2", *LLM, "--prompt-file", str(broken)],
                     subprocess_env)
    err = one_error_line(result)
    assert f"{broken}:" in err and "Jinja syntax error" in err
    # the line the error names is the line of the broken tag (or the next, where Jinja noticed)
    named = int(err.split(f"{broken}:", 1)[1].split(":", 1)[0])
    assert expected_line <= named <= expected_line + 1
    assert time.monotonic() - started < 60  # no model was loaded


# ------------------------------------------------------------------------------ input formats and sizes


def test_input_format_for_files_without_extension_fifo_and_stdin(tmp_path, subprocess_env):
    rows = "".join(json.dumps({"text": t}) + "\n" for t, _ in intent_corpus(["weather", "alarm"], 6))
    plain = tmp_path / "export"
    plain.write_text(rows)
    hint = run_cli(["metrics", str(plain), "--metrics", "lexical"], subprocess_env)
    assert "--input-format" in one_error_line(hint)
    ok = run_cli(["metrics", str(plain), "--metrics", "lexical", "--input-format", "jsonl", "--format", "json"],
                 subprocess_env)
    assert ok.returncode == 0, ok.stderr and json.loads(ok.stdout)["n_samples"] == 6
    assert json.loads(ok.stdout)["n_samples"] == 6

    piped = run_cli(["metrics", "-", "--metrics", "lexical", "--input-format", "jsonl", "--format", "json"],
                    subprocess_env, input=rows)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["n_samples"] == 6 and json.loads(piped.stdout)["source"] == "<stdin>"
    no_format = run_cli(["metrics", "-", "--metrics", "lexical"], subprocess_env, input=rows)
    assert "--input-format" in one_error_line(no_format)

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*CLI, "metrics", str(fifo), "--metrics", "lexical", "--input-format", "jsonl",
                             "--format", "json"], env=subprocess_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    with open(fifo, "w") as writer:
        writer.write(rows)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["n_samples"] == 6

    scored = run_cli(["score", "-", "--input-format", "jsonl", "--model", "fake/echo", "--metrics", "none",
                      "--format", "json", "--no-record"], subprocess_env, input=rows)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["n_samples"] == 6


def test_dev_zero_as_jsonl_stops_at_the_record_cap(tmp_path, subprocess_env):
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    started = time.monotonic()
    result = run_cli(["metrics", str(zero), "--metrics", "lexical"], subprocess_env, timeout=120)
    err = one_error_line(result)
    assert f"{zero}:1: a line exceeds the limit of {64 * 2**20} bytes" in err and "CLUSTERDIV_MAX_RECORD_MB" in err
    assert time.monotonic() - started < 60
    as_json = tmp_path / "zero.json"
    as_json.symlink_to("/dev/zero")
    assert "expected a JSON array" in one_error_line(run_cli(["metrics", str(as_json)], subprocess_env))


def test_gzip_bomb_file_stops_at_the_input_cap(tmp_path, subprocess_env):
    bomb = tmp_path / "bomb.jsonl.gz"
    line = json.dumps({"text": "x" * 1000}).encode() + b"\n"
    bomb.write_bytes(gzip.compress(line * 20_000))  # ~20 MB unpacked from ~60 KB
    env = {**subprocess_env, "CLUSTERDIV_MAX_INPUT_MB": "5"}
    err = one_error_line(run_cli(["metrics", str(bomb), "--metrics", "lexical"], env))
    assert f"{bomb}: decompressed data exceeds the limit of {5 * 2**20} bytes" in err


# ------------------------------------------------------------------------------ report honesty


def test_long_text_truncation_is_counted_in_the_report(tmp_path, subprocess_env):
    rows = [{"id": f"t{i}", "text": t} for i, (t, _) in enumerate(intent_corpus(["weather", "alarm"], 5))]
    rows.append({"id": "long", "text": "tell me about the weather " + "very " * 40_000})  # ~200,000 chars
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    _, report = score_json(path, subprocess_env, "--id-field", "id")
    assert report["truncated"] == {"count": 1, "limit_chars": 1200, "example_ids": ["long"]}
    assert any("cut for the LLM" in w for w in report["warnings"])
    table = run_cli(["score", str(path), "--model", "fake/echo", *LLM, "--metrics", "none", "--no-record"],
                    subprocess_env)
    assert table.returncode == 0 and "1 truncated" in table.stdout
    markdown = run_cli(["score", str(path), "--model", "fake/echo", *LLM, "--metrics", "none", "--no-record",
                        "--format", "markdown"], subprocess_env)
    assert "texts cut for the LLM: 1 (longer than 1200 characters)" in markdown.stdout


def test_metrics_skip_invalid_table_shows_skipped_rows(tmp_path, subprocess_env):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "play some jazz"}\nnot json\n{"text": "set an alarm"}\n{"text": ""}\n'
                    '{"text": "tell me a joke"}\n')
    for fmt, expected in (("table", "2 skipped"), ("markdown", "2 malformed rows skipped")):
        result = run_cli(["metrics", str(path), "--metrics", "lexical", "--skip-invalid", "--format", fmt],
                         subprocess_env)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout and "line 2: invalid JSON" in result.stdout


def test_one_and_two_identical_examples_give_na_not_zero_width(tmp_path, subprocess_env):
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": "hi there"}])
    _, report = score_json(one, subprocess_env)
    assert report["ci95"] is None and report["ci95_normalized"] is None
    assert report["metrics"]["distinct_3"]["value"] is None
    assert "no 3-grams" in report["metrics"]["distinct_3"]["details"]["reason"]
    assert any("too few for the score's 95% intervals" in w for w in report["warnings"])
    assert any(w.startswith("distinct_3 is n/a") for w in report["warnings"])

    two = write_jsonl(tmp_path / "two.jsonl", [{"text": "set an alarm for six"}] * 2)
    _, report = score_json(two, subprocess_env)
    assert report["ci95"] is None and report["ci95_normalized"] is None
    assert report["metrics"]["distinct_1"]["ci95"] is None
    assert "too few for an interval" in report["metrics"]["distinct_1"]["details"]["ci_skipped"]
    table = run_cli(["metrics", str(one), "--metrics", "lexical"], subprocess_env)
    assert table.returncode == 0 and "n/a" in table.stdout and "warning: distinct_3 is n/a" in table.stdout


# ------------------------------------------------------------------------------ file modes


def test_cache_and_history_files_are_private(small_corpus, tmp_path, subprocess_env):
    history = tmp_path / "new" / "dir" / "history.sqlite"
    cache = tmp_path / "fresh-cache"
    env = {**subprocess_env, "CLUSTERDIV_HISTORY_DB": str(history), "CLUSTERDIV_CACHE_DIR": str(cache)}
    result = run_cli(["score", str(small_corpus), "--model", "fake/echo", "--metrics", "none"], env)
    assert result.returncode == 0, result.stderr

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(cache) == 0o700 and mode(cache / "cache.db") == 0o600
    assert mode(history) == 0o600 and mode(history.parent) == 0o700 and mode(history.parent.parent) == 0o700
    for side in [*cache.glob("cache.db-*"), *history.parent.glob("history.sqlite-*")]:
        assert mode(side) == 0o600, side


# ------------------------------------------------------------------------------ the service, a real server


@pytest.fixture
def server(tmp_path):
    from service_server import ServerProcess

    proc = ServerProcess(tmp_path, args=["--model", "fake/echo", "--max-body-mb", "1", "--body-timeout", "2"]).start()
    yield proc
    proc.stop()


@pytest.fixture
def token_server(tmp_path):
    from service_server import ServerProcess

    proc = ServerProcess(tmp_path, args=["--model", "fake/echo", "--log-level", "info"], token="tok-3f9c1e77").start()
    yield proc
    proc.stop()


def test_gz_upload_is_decompressed_against_the_body_limit(server):
    line = json.dumps({"text": "y" * 1000}).encode() + b"\n"
    bomb = gzip.compress(line * 50_000, compresslevel=9)  # ~50 MB of JSONL in well under the 1 MB limit
    assert len(bomb) < 1024 * 1024
    with server.client() as client:
        answer = client.post("/v1/jobs/upload", files={"file": ("bomb.jsonl.gz", bomb)})
        assert answer.status_code == 413, answer.text
        assert "decompressed data exceeds the limit of 1048576 bytes" in answer.json()["detail"]
        assert client.get("/v1/jobs").json()["jobs"] == []  # nothing was queued


def test_host_header_and_cross_origin_posts_are_checked(server):
    import httpx

    files = {"file": ("a.txt", b"set an alarm for six\nplay some jazz\n")}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        rebound = client.get("/v1/jobs", headers={"Host": "evil.example"})
        assert rebound.status_code == 400 and "invalid Host header 'evil.example'" in rebound.json()["detail"]
        assert client.get("/v1/jobs", headers={"Host": f"localhost:{server.port}"}).status_code == 200
        forged = client.post("/v1/jobs/upload", files=files, headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403 and "cross-origin request refused" in forged.json()["detail"]
        cross = client.post("/v1/jobs/upload", files=files, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        assert client.get("/v1/jobs").json()["jobs"] == []
        same = client.post("/v1/jobs/upload", files=files, headers={"Origin": server.url})
        assert same.status_code == 202, same.text


def test_access_token_only_on_html_pages_and_never_logged(token_server):
    import httpx
    from service_server import wait_for_job

    token = token_server.token
    with token_server.client() as client:
        job = client.post("/v1/jobs", json={"kind": "score", "texts": ["set an alarm", "play jazz", "tell a joke"],
                                            "options": {"metrics": "none", "name_clusters": False}}).json()
        assert wait_for_job(client, job["id"])["status"] == "succeeded"
    with httpx.Client(base_url=token_server.url, timeout=30) as anon:
        for path in ("/v1/jobs", f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/report",
                     f"/v1/jobs/{job['id']}/exploration"):
            assert anon.get(path, params={"access_token": token}).status_code == 401, path
        assert anon.get(f"/v1/jobs/{job['id']}/explorer", params={"access_token": token}).status_code == 200
        html = anon.get(f"/v1/jobs/{job['id']}/report", params={"access_token": token, "format": "html"})
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    time.sleep(0.5)
    log = token_server.log_path.read_text()
    assert f"/v1/jobs/{job['id']}/explorer?" in log  # the access log still shows the request
    assert token not in log


def test_blank_texts_and_bad_options_are_422_at_submit_naming_the_field(server):
    tail = [{"name": "alarms", "description": "requests to set alarms"}]
    cases = [
        ({"kind": "score", "texts": [""]}, ["texts", 0]),
        ({"kind": "audit-tail", "texts": [""], "tail": tail}, ["texts", 0]),
        ({"kind": "score", "texts": ["a b", "c d"], "options": {"metrics": "bogus"}}, ["options", "metrics"]),
        ({"kind": "score", "texts": ["a b", "c d"], "options": {"seed": -1}}, ["options", "seed"]),
        ({"kind": "score", "texts": ["a b", "c d"], "reference": [""]}, ["reference", 0]),
        ({"kind": "score", "texts": ["a b", "c d"], "reference": []}, ["reference"]),
        ({"kind": "compare", "batches": {"a": ["x y"], "b": [""]}}, ["batches", "b", 0]),
        ({"kind": "compare", "batches": {"a": ["x y"], "b": []}}, ["batches", "b"]),
    ]
    with server.client() as client:
        for body, field in cases:
            answer = client.post("/v1/jobs", json=body)
            assert answer.status_code == 422, (body, answer.text)
            locations = [err["loc"] for err in answer.json()["detail"]]
            assert any(loc[2:2 + len(field)] == field for loc in locations), (body, locations)
        blank = client.post("/v1/jobs", json={"kind": "score", "texts": ["fine", "  "]})
        assert blank.status_code == 422 and blank.json()["detail"] == "texts: text 2 is empty"
        upload = client.post("/v1/jobs/upload", files={"file": ("a.txt", b"one two\nthree four\n")},
                             data={"options": json.dumps({"metrics": "bogus"})})
        assert upload.status_code == 422 and "bogus" in upload.text
        assert client.get("/v1/jobs").json()["jobs"] == []  # nothing queued, nothing paid
    assert "Traceback" not in server.log()


def test_html_responses_carry_csp_nosniff_and_no_framing(server):
    from service_server import wait_for_job

    with server.client() as client:
        job = client.post("/v1/jobs", json={"kind": "score", "texts": ["set an alarm", "play jazz", "tell a joke"],
                                            "options": {"metrics": "none"}}).json()
        assert wait_for_job(client, job["id"])["status"] == "succeeded"
        for path in (f"/v1/jobs/{job['id']}/explorer", f"/v1/jobs/{job['id']}/report?format=html", "/docs"):
            page = client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "'sha256-" in csp
            scripts = csp.split("script-src", 1)[1].split(";", 1)[0]
            assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts  # a 3-point map is SVG
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["x-frame-options"] == "DENY"
        assert client.get("/v1/jobs").headers["x-content-type-options"] == "nosniff"


def test_chunked_oversize_body_is_413(server):
    import httpx

    def chunks():
        for _ in range(64):
            yield b"x" * 65536  # 4 MB in total, no Content-Length: sent chunked

    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
        assert answer.status_code == 413, answer.text
        assert "exceeds this server's limit" in answer.json()["detail"]


def test_a_stalled_body_times_out_with_408(server):
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"kind\": \"score\", ")
        started = time.monotonic()
        reply = sock.recv(65536)
        waited = time.monotonic() - started
        while chunk := sock.recv(65536):  # the server closes the connection after the 408
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"request body timed out" in reply
    assert 1.5 <= waited < 20  # --body-timeout 2, not the 84 s the probe saw


def test_auth_comes_before_body_validation_and_readyz_says_little_without_a_token(token_server):
    import httpx

    with httpx.Client(base_url=token_server.url, timeout=30) as anon:
        malformed = anon.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
        assert malformed.status_code == 401 and malformed.headers["www-authenticate"] == "Bearer"
        bad_schema = anon.post("/v1/jobs", json={"kind": "nonsense"})
        assert bad_schema.status_code == 401
        assert anon.get("/readyz").json() == {"status": "ready"}
    with token_server.client() as client:
        assert client.post("/v1/jobs", content=b"{not json",
                           headers={"Content-Type": "application/json"}).status_code == 422
        detailed = client.get("/readyz").json()
        assert detailed["status"] == "ready" and "jobs" in detailed and "models" in detailed


def test_service_databases_and_cache_are_private(server):
    from clusterdiv.core.cache import ModelCache

    db = server.workdir / "service.sqlite"
    with server.client() as client:
        job = client.post("/v1/jobs", json={"kind": "score", "texts": ["set an alarm", "play jazz", "a joke"],
                                            "options": {"metrics": "none"}}).json()
        from service_server import wait_for_job

        assert wait_for_job(client, job["id"])["status"] == "succeeded"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with ModelCache(server.workdir / "cache", migrate=False):
        pass
    assert stat.S_IMODE((server.workdir / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE((server.workdir / "cache" / "cache.db").stat().st_mode) == 0o600


def test_cancel_a_running_job_stops_it_and_keeps_paid_answers(tmp_path):
    from service_server import ServerProcess, wait_for_job

    from clusterdiv.core.cache import ModelCache

    proc = ServerProcess(tmp_path, args=["--model", "fake/slow", "--workers", "1", "--llm-concurrency", "1"],
                         env={"FAKE_LLM_DELAY": "0.4"}).start()
    log = tmp_path / "calls.log"

    def calls() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    texts = [t for t, _ in intent_corpus(["weather", "alarm", "music", "joke", "recipe", "flight"], 36, seed=2)]
    try:
        with proc.client() as client:
            job = client.post("/v1/jobs", json={"kind": "score", "texts": texts, "options": {  # LLM work to cancel
                "metrics": "none", "representation": "criteria"}}).json()
            queued = client.post("/v1/jobs", json={"kind": "score", "texts": texts[:4]}).json()
            deadline = time.monotonic() + 120
            while calls() < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert calls() >= 3, proc.log()
            cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            at_cancel = calls()
            # a queued job is cancelled with DELETE and never runs
            dropped = client.delete(f"/v1/jobs/{queued['id']}")
            assert dropped.status_code == 200 and dropped.json()["status"] == "cancelled"
            time.sleep(3)
            assert calls() <= at_cancel + 1  # it stopped at the next example, not after all 36
            view = client.get(f"/v1/jobs/{job['id']}").json()
            assert view["status"] == "cancelled" and view["error"] == "cancelled by request"
            assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409  # already cancelled
            assert client.post("/v1/jobs/nope/cancel").status_code == 404
            # the one worker is free again: a new job runs to the end
            after = client.post("/v1/jobs", json={"kind": "score", "texts": texts[:3],
                                                  "options": {"metrics": "none", "name_clusters": False}}).json()
            assert wait_for_job(client, after["id"])["status"] == "succeeded"
            assert client.get(f"/v1/jobs/{queued['id']}").json()["status"] == "cancelled"
        with ModelCache(tmp_path / "cache", migrate=False) as cache:
            paid = cache.info()["entries_by_kind"].get("llm", 0)
        assert paid >= at_cancel - 1  # every answer paid before the cancel is in the cache
    finally:
        proc.stop()


# ------------------------------------------------------------------------------ a real OpenAI-compatible server


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server (its `[server]` extra) with the bundled GGUF."""
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server] (dev extras)")
    import httpx
    from service_server import free_port

    from clusterdiv.llm.local import default_threads, resolve_local_model

    gguf = resolve_local_model("smollm2").path
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    threads = str(default_threads())  # this worker's share of the cores, for prompt evaluation too
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", "2048", "--n_threads", threads,
                                 "--n_threads_batch", threads],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"llama-cpp server did not start: {log.read_text()[-3000:]}")
    yield url, log
    proc.terminate()
    proc.wait(timeout=30)


REPORT_KEYS = {"n_samples", "n_clusters", "score", "score_normalized", "ci95", "clusters", "failed", "config",
               "timings", "truncated", "warnings"}


def test_key_less_local_openai_server_with_response_format_fallback(llama_server, small_corpus, subprocess_env):
    url, log = llama_server
    env = {k: v for k, v in subprocess_env.items() if k not in ("OPENAI_API_KEY", "CLUSTERDIV_API_KEY")}
    result = run_cli(["score", str(small_corpus), "--model", "openai/smollm2", "--api-base", url, *LLM,
                      "--metrics", "none", "--format", "json", "--no-record", "--concurrency", "2"], env, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout is the report only (no litellm banner)
    # detected once per run: one warning (in the report's warnings, issue 32), then every call uses the format
    # the server takes
    assert " ".join(report["warnings"]).count("refused response_format 'json_schema'; using 'json_object_schema'") == 1
    assert report["failed"]["count"] <= 2 and report["n_samples"] >= 7
    assert report["config"]["model"] == "openai/smollm2"
    assert all(set(c["top_values"]) == {"intent", "topic", "task", "style"} for c in report["clusters"])
    server_log = log.read_text()
    # a status code, not a substring: the log's client ports (127.0.0.1:44010) can contain "401"
    assert "Missing credentials" not in result.stderr
    assert not re.search(r'HTTP/1\.[01]" 401\b', server_log), server_log
    in_process = run_cli(["score", str(small_corpus), "--model", "local/smollm2", *LLM, "--metrics", "none",
                          "--format", "json", "--no-record", "--sample", "3"], env, timeout=600)
    assert in_process.returncode == 0, in_process.stderr
    assert set(json.loads(in_process.stdout)) == set(report) and REPORT_KEYS <= set(report)


def test_systematic_error_stops_the_run_instead_of_retrying_every_example(tmp_path, subprocess_env):
    from service_server import free_port

    rows = [{"text": t} for t, _ in intent_corpus(["weather", "alarm", "music", "joke"], 40)]
    path = write_jsonl(tmp_path / "forty.jsonl", rows)
    env = {k: v for k, v in subprocess_env.items() if k != "OPENAI_API_KEY"}
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: every call fails alike
    started = time.monotonic()
    result = run_cli(["score", str(path), "--model", "openai/smollm2", "--api-base", dead, *LLM, "--metrics",
                      "none", "--no-record", "--concurrency", "1"], env, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "examples in a row failed with the same error" in result.stderr
    assert "Connection error" in result.stderr
    assert time.monotonic() - started < 90  # 3 examples' retries, not 40


def test_explorer_page_runs_under_its_csp_without_violations(server, browser_page):
    """The CSP is strict (hashed inline scripts only); the explorer must still draw its map under it."""
    from service_server import wait_for_job

    texts = [t for t, _ in intent_corpus(["weather", "alarm", "music"], 18, seed=1)]
    with server.client() as client:
        job = client.post("/v1/jobs", json={"kind": "score", "texts": texts, "options": {"metrics": "none"}}).json()
        assert wait_for_job(client, job["id"])["status"] == "succeeded"
    opened = browser_page()
    page = opened.page
    response = page.goto(f"{server.url}/v1/jobs/{job['id']}/explorer")
    assert "content-security-policy" in response.headers
    page.wait_for_selector("#map .scatterlayer .point", timeout=30_000)
    assert page.locator("#map .scatterlayer .point").count() == len(texts)
    violations = opened.csp_violations()
    assert violations == [], violations


def test_serve_with_a_garbage_database_is_one_line_naming_it(tmp_path, subprocess_env):
    db = tmp_path / "jobs.sqlite"
    db.write_bytes(b"definitely not sqlite\n" * 100)
    from service_server import free_port

    result = run_cli(["serve", "--db", str(db), "--port", str(free_port())], subprocess_env, timeout=60)
    err = one_error_line(result)
    assert str(db) in err and "not a usable SQLite database" in err


@pytest.mark.parametrize(("command", "option", "value", "bound"), [
    ("check", "--seed", "-1", "greater than or equal to 0"), ("check", "--sample", "0", "greater than or equal to 1"),
    ("compare", "--concurrency", "0", "greater than or equal to 1"),
    ("compare", "--reference-size", "1", "greater than or equal to 2"),
])
def test_check_and_compare_share_the_option_bounds(command, option, value, bound, small_corpus, subprocess_env):
    files = [str(small_corpus)] if command == "check" else [str(small_corpus), str(small_corpus)]
    result = run_cli([command, *files, "--model", "fake/echo", option, value], subprocess_env)
    assert f"Invalid value for '{option}': Input should be {bound}" in one_error_line(result)
    assert calls_made(subprocess_env) == 0


def test_a_server_refusing_every_response_format_gets_the_schema_in_the_prompt(small_corpus, subprocess_env):
    result, report = score_json(small_corpus, subprocess_env, "--concurrency", "1")
    assert report["timings"]["llm_calls"] > 0  # the baseline: fake/echo takes json_schema
    refused = run_cli(["score", str(small_corpus), "--model", "fake/noformat", *LLM, "--metrics", "none",
                       "--format", "json", "--no-record", "--concurrency", "1", "--cache-dir",
                       str(Path(subprocess_env["CLUSTERDIV_CACHE_DIR"]) / "other")], subprocess_env)
    assert refused.returncode == 0, refused.stderr
    fallback = json.loads(refused.stdout)
    for tried, used in (("json_schema", "json_object_schema"), ("json_object_schema", "json_object"),
                        ("json_object", "prompt")):  # one warning each, in the report (issue 32's noise row)
        assert " ".join(fallback["warnings"]).count(f"refused response_format '{tried}'; using '{used}'") == 1
    assert fallback["failed"]["count"] == 0 and fallback["n_samples"] == report["n_samples"]
    unique = len({json.loads(line)["text"] for line in small_corpus.read_text().splitlines()})
    assert fallback["timings"]["llm_calls"] == unique + 3  # three refusals once per run, then one call each


def test_api_key_reaches_the_provider_but_never_the_report_or_cache(small_corpus, cache_dir, subprocess_env):
    secret = "sk-test-9d2f61c0"
    result, report = score_json(small_corpus, subprocess_env, "--api-key", secret)
    sent = {json.loads(line)["api_key"] for line in Path(subprocess_env["FAKE_LLM_CALL_LOG"]).read_text().splitlines()}
    assert sent == {secret}
    assert secret not in result.stdout and secret not in result.stderr
    with_env = run_cli(["score", str(small_corpus), "--model", "fake/echo", *LLM, "--metrics", "none",
                        "--format", "json"], {**subprocess_env, "CLUSTERDIV_API_KEY": secret})
    assert with_env.returncode == 0 and secret not in with_env.stdout
    for path in [*cache_dir.rglob("*"), Path(subprocess_env["CLUSTERDIV_HISTORY_DB"])]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_check_reads_stdin_with_input_format(small_corpus, subprocess_env):
    assert run_cli(["track", "ds", "--owner", "me", "--min", "score=0.0"], subprocess_env).returncode == 0
    result = run_cli(["check", "-", "--input-format", "jsonl", "--dataset", "ds", "--model", "fake/echo",
                      "--metrics", "none", "--format", "json", "--no-progress"], subprocess_env,
                     input=small_corpus.read_text())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["report"]["source"] == "<stdin>"
