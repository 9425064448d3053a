"""A real `clusterdiv serve` process on 127.0.0.1 for tests: start, wait until ready, kill, restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

TESTS_DIR = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One server; `start()` again after `kill()` reuses the same port, database and cache."""

    def __init__(self, workdir: Path, *, args: list[str] | None = None, env: dict[str, str] | None = None,
                 token: str | None = None):
        self.workdir = workdir
        self.port = free_port()
        self.args = args or []
        self.token = token
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), self.env.get("PYTHONPATH", "")])
        self.env["CLUSTERDIV_PLUGINS"] = "fake_llm"
        self.env["CLUSTERDIV_CACHE_DIR"] = str(workdir / "cache")
        self.env["CLUSTERDIV_HISTORY_DB"] = str(workdir / "service.sqlite")
        self.env["FAKE_LLM_CALL_LOG"] = str(workdir / "calls.log")
        self.env.pop("CLUSTERDIV_API_TOKEN", None)
        if token:
            self.env["CLUSTERDIV_API_TOKEN"] = token
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=60, **kwargs)

    def start(self, timeout: float = 90) -> ServerProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clusterdiv.cli", "serve", "--port", str(self.port), "--log-level", "warning",
             *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, exactly like a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


def wait_for_job(client: httpx.Client, job_id: str, *, timeout: float = 180, until: Any = None) -> dict[str, Any]:
    """Poll a job until it is finished (or `until(view)` is true); returns the last view."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if (until(view) if until else view["status"] in ("succeeded", "failed")):
            return view
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not get there in {timeout}s; last view {view}")
