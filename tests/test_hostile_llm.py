"""Issue 30, rows 7, 8 and 27: a Ray address where nothing listens, an LLM server that accepts and never
answers, Ctrl-C during extraction. Through the real CLI (a subprocess) against real sockets on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_hostile_inputs import CLI, LLM, calls_made, one_error_line, run_cli, write_jsonl


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once by the OS, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_SAID_BEFORE = re.compile(r"^LLM: |^\w+ \d+/\d+ \(\d+%\)")  # the cost line and progress lines (issue 32)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not _SAID_BEFORE.match(line)]


# ------------------------------------------------------------------------------ row 7: Ray address


def test_ray_address_where_nothing_listens_fails_at_once(tmp_path, subprocess_env):
    pytest.importorskip("ray")
    port = closed_port()
    batch = write_jsonl(tmp_path / "batch.jsonl", [{"text": f"hello number {i}"} for i in range(6)])
    started = time.monotonic()
    result = run_cli(["score", str(batch), "--engine", "ray", "--ray-address", f"127.0.0.1:{port}",
                      "--metrics", "lexical", "--no-record"], subprocess_env, timeout=120)
    elapsed = time.monotonic() - started
    one_error_line(result)
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr  # no GCS retry log from Ray's C++ core
    assert lines[0].startswith(f"error: cannot reach Ray at 127.0.0.1:{port} (127.0.0.1: Connection refused"), lines
    assert lines[0].endswith("): is a cluster running there? (--ray-address)"), lines
    assert elapsed < 20, elapsed


# ------------------------------------------------------------------------------ row 8: silent LLM server


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """An HTTP port that accepts every connection and never answers (nor closes)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    done.set()
    thread.join(timeout=5)
    listener.close()
    for conn in accepted:
        conn.close()


def test_llm_server_that_never_answers_stops_the_run(tmp_path, subprocess_env, silent_server):
    port, accepted = silent_server
    batch = write_jsonl(tmp_path / "batch.jsonl", [{"text": f"question number {i} about things"} for i in range(20)])
    result = run_cli(["score", str(batch), *LLM, "--model", "openai/silent", "--api-base",
                      f"http://127.0.0.1:{port}/v1", "--timeout", "1", "--metrics", "lexical", "--no-record"],
                     subprocess_env, timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: stopping: 3 examples in a row failed with the same error, so it is not "
                               "about the examples: Timeout after 3 attempts: litellm.Timeout:"), lines
    assert "timeout value=1.0" in lines[0]
    # Stopped after the first examples' 3 attempts each, not after all 20 examples' 60.
    assert 9 <= len(accepted) <= 20, len(accepted)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_timeout_must_be_a_positive_number(value, tmp_path, subprocess_env):
    batch = write_jsonl(tmp_path / "batch.jsonl", [{"text": "hello"}])
    result = run_cli(["score", str(batch), *LLM, "--model", "fake/echo", "--timeout", value], subprocess_env)
    message = one_error_line(result)
    expected = "Input should be a number of seconds" if value == "soon" else \
        "Input should be a finite number greater than 0"
    assert "Invalid value for '--timeout'" in message and expected in message, message


@pytest.mark.parametrize("command", ["check", "compare", "explore", "select", "seeds", "audit-tail", "mix", "drift"])
def test_every_command_that_calls_an_llm_takes_timeout(command, subprocess_env):
    result = run_cli([command, "--help"], subprocess_env)
    assert result.returncode == 0 and "--timeout" in result.stdout, result.stdout


# ------------------------------------------------------------------------------ row 27: Ctrl-C


def test_ctrl_c_during_extraction_stops_fast_and_keeps_the_answers_in_flight(tmp_path, subprocess_env):
    rows = [{"text": f"please tell me about topic number {i}"} for i in range(40)]
    batch = write_jsonl(tmp_path / "batch.jsonl", rows)
    args = ["score", str(batch), *LLM, "--model", "fake/slow", "--concurrency", "4", "--metrics", "lexical",
            "--no-record", "--format", "json"]
    env = dict(subprocess_env, FAKE_LLM_DELAY="1")
    proc = subprocess.Popen([*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while calls_made(env) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert calls_made(env) >= 5, proc.communicate()
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    elapsed = time.monotonic() - signalled
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert error_lines(stderr) == ["interrupted: every answer received so far is cached; rerun to resume"], stderr
    assert elapsed < 6, elapsed
    sent = calls_made(env)
    assert 5 <= sent < 40

    rerun = run_cli(args, dict(env, FAKE_LLM_DELAY="0.01"))
    assert rerun.returncode == 0, rerun.stderr
    timings = json.loads(rerun.stdout)["timings"]
    # Every request sent before Ctrl-C was answered and cached, those in flight included: none is asked twice.
    assert timings["llm_cache_hits"] == sent, (timings, sent)
    texts = [json.loads(line)["text"] for line in Path(env["FAKE_LLM_CALL_LOG"]).read_text().splitlines()]
    assert len(texts) == len(set(texts)) == 40
