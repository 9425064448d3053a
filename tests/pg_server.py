"""A throwaway PostgreSQL server for tests: initdb + pg_ctl on a temp dir and a free localhost port.

Why a real server: the history store promises "any SQLAlchemy URL, e.g. PostgreSQL"; only a real
server checks the dialect-specific parts (advisory lock, ON CONFLICT, ALTER TABLE, RETURNING).
Tests that need it are skipped, with the reason, when the server binaries or psycopg are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PostgresServer:
    def __init__(self, port: int, user: str):
        self.port = port
        self.user = user

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database per test, so tests never see each other's rows."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _binaries() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found and shutil.which("pg_ctl") else None


def unavailable_reason() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg (v3) is not installed: pip install 'psycopg[binary]'"
    if _binaries() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a server (as the `postgres` user when we are root: initdb refuses to run as root)."""
    bindir = _binaries()
    assert bindir is not None
    datadir = Path(tempfile.mkdtemp(prefix="clusterdiv-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(datadir, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    user = "clusterdiv"
    run = lambda *args: subprocess.run([*prefix, *args], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(datadir / "data"), "-U", user, "--auth=trust", "-E", "UTF8",
            "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(datadir / "data"), "-l", str(datadir / "server.log"), "-w",
            "-t", "60", "-o", f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -F", "start")
        yield PostgresServer(port, user)
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(datadir / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(datadir, ignore_errors=True)
