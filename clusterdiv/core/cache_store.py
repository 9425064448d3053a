"""The storage under `ModelCache`: a diskcache `Disk` that never pickles, and what opening it needs.

Apart from cache.py because it is the part that decides what a cache file may contain (see
SECURITY.md): `SafeDisk` writes only raw bytes and JSON text and reads old pickled entries with an
unpickler that resolves no global, so nothing read from a cache can run code; a read-only or
corrupt database is recognised here and named by `ModelCache`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_RAW, MODE_TEXT

DB_NAME = "cache.db"  # diskcache's file name inside the directory


class CorruptEntry(Exception):
    """A stored value that does not decode to what clusterdiv writes; treated as a miss."""


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Reads only pickles of builtin containers and scalars: any class or callable is refused.

    Every way a pickle runs code (REDUCE, BUILD, INST, OBJ, NEWOBJ, extension codes) needs a
    callable obtained through `find_class` or `persistent_load`; both raise here. This is the
    "restricting globals" recipe of the `pickle` documentation, with nothing allowed.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused: the pickle names {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused: persistent id")


def safe_unpickle(data: bytes) -> Any:
    try:
        return _NoGlobalsUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # noqa: BLE001 - any failure means "not one of our entries"
        raise CorruptEntry(f"legacy pickled value refused: {exc}") from exc


class SafeDisk(diskcache.Disk):
    """diskcache serialisation without pickle: str keys, bytes or JSON values only."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"cache keys are strings, got {type(key).__name__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise CorruptEntry("pickled key refused")
        return bytes(key) if isinstance(key, (bytes, memoryview)) else key

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if read:
            raise TypeError("file-like cache values are not supported")
        if type(value) is bytes:
            return super().store(value, False, key=key)
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cache values are bytes or JSON; {type(value).__name__}: {exc}") from exc
        return super().store(text, False, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        try:
            if mode == MODE_RAW:
                if isinstance(value, (bytes, memoryview)):
                    return bytes(value)
                if isinstance(value, str):
                    return json.loads(value)
                raise CorruptEntry(f"unexpected raw value of type {type(value).__name__}")
            if mode == MODE_BINARY:
                return self._read_file(filename)
            if mode == MODE_TEXT:
                return json.loads(self._read_file(filename).decode("utf-8"))
            if mode == MODE_PICKLE:  # written by clusterdiv < 0.1.1, or by someone else
                data = bytes(value) if value is not None else self._read_file(filename)
                loaded = safe_unpickle(data)
                if not isinstance(loaded, (dict, list, bytes)):
                    raise CorruptEntry(f"legacy value of type {type(loaded).__name__}")
                return loaded
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptEntry(f"value does not decode: {exc}") from exc
        raise CorruptEntry(f"unknown storage mode {mode!r}")

    def _read_file(self, filename: str | None) -> bytes:
        if not filename:
            raise CorruptEntry("file-backed value without a file name")
        root = Path(self._directory).resolve()
        path = (root / filename).resolve()
        if root not in path.parents:  # a crafted row must not make us read outside the cache
            raise CorruptEntry(f"value file {filename!r} is outside the cache directory")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise CorruptEntry(f"value file unreadable: {exc}") from exc


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as 0700: cached answers contain the users' texts."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        with contextlib.suppress(FileExistsError):
            p.mkdir(mode=0o700)


def private_file(path: Path) -> None:
    """Create an empty file 0600 unless it exists, so SQLite (and its -wal/-shm) inherit 0600."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def is_read_only(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, (sqlite3.OperationalError, PermissionError)) and (
        "readonly" in text or "read-only" in text or "unable to open" in text or "permission" in text)


class ReadOnlyStore:
    """Reads a diskcache database that this process may not write (a shared, read-only cache)."""

    def __init__(self, directory: Path):
        db = directory / DB_NAME
        if not db.is_file():
            raise sqlite3.OperationalError("unable to open database file")
        self._disk = SafeDisk(str(directory))
        uri = db.resolve().as_uri()
        try:
            self._conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
            self._conn.execute("SELECT count(*) FROM Cache").fetchone()
        except sqlite3.OperationalError:  # WAL database in a read-only folder: no -shm can be made
            self._conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
            self._conn.execute("SELECT count(*) FROM Cache").fetchone()

    def row(self, key: str) -> tuple[int, str | None, Any] | None:
        return self._conn.execute("SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1",
                                  (key,)).fetchone()

    def close(self) -> None:
        self._conn.close()
