"""Persistent cache for every paid model response (LLM completions and embeddings).

Keys are content hashes of everything that can change an answer (model identity, prompt file
hash, generation parameters, output schema, input text), never file names, so a changed prompt
or model invalidates exactly the entries it affects and nothing else. Each answer is written the
moment it arrives: diskcache commits every `set` to SQLite, so a crash or Ctrl-C loses nothing
that was already paid for and the next run resumes from there.

What the cache trusts (see SECURITY.md): nothing it reads can run code. Values are stored as raw
bytes (embeddings, float32) or JSON text (LLM answers), never pickled; `SafeDisk` refuses to
write anything else. Entries written by clusterdiv before 0.1.1 were pickled dicts: they are read
with an unpickler that resolves no global at all (so a crafted pickle cannot name a callable to
run) and rewritten as JSON when the cache is opened. A value that does not decode is treated as a
miss, counted in `corrupt`, deleted and recomputed. A corrupt database file is one line naming
it (`clusterdiv cache clear` recreates it); a read-only cache is used for reading, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import sqlite3
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import diskcache
import platformdirs
from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_RAW, MODE_TEXT

from clusterdiv.core.errors import InputError

CACHE_ENV_VAR = "CLUSTERDIV_CACHE_DIR"
DB_NAME = "cache.db"  # diskcache's file name inside the directory
# diskcache evicts past 1 GB by default; evicting paid answers would make reruns silently expensive.
_NO_EVICTION = {"eviction_policy": "none", "size_limit": 2**62}


class CacheError(InputError):
    """The cache database cannot be used as it is (corrupt, unreadable): exit code 2, file named."""


class CorruptEntry(Exception):
    """A stored value that does not decode to what clusterdiv writes; treated as a miss."""


class CacheReadOnlyWarning(UserWarning):
    pass


def default_cache_dir() -> Path:
    """`$CLUSTERDIV_CACHE_DIR` if set, else the platform's user cache directory."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env) if env else Path(platformdirs.user_cache_dir("clusterdiv"))


def stable_hash(value: Any) -> str:
    """sha256 of a canonical JSON rendering, so dict order and whitespace never change a key."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def make_key(namespace: str, **parts: Any) -> str:
    """Cache key = namespace + hash of all parts; the namespace keeps LLM and embedding keys apart."""
    return f"{namespace}:{stable_hash(parts)}"


# ------------------------------------------------------------------------------------- storage


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


def _is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def _is_read_only(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, (sqlite3.OperationalError, PermissionError)) and (
        "readonly" in text or "read-only" in text or "unable to open" in text or "permission" in text)


class _ReadOnlyStore:
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


class ModelCache:
    """A diskcache store plus per-namespace hit/miss/corrupt counters for the run's report."""

    def __init__(self, directory: str | Path | None = None, *, migrate: bool = True):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.db_path = self.directory / DB_NAME
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.corrupt: Counter[str] = Counter()
        self.migrated = 0
        self.read_only = False
        self._ro: _ReadOnlyStore | None = None
        self._store: diskcache.Cache | None = None
        try:
            private_dir(self.directory)
            private_file(self.db_path)
            self._store = diskcache.Cache(str(self.directory), disk=SafeDisk, **_NO_EVICTION)
        except Exception as exc:  # noqa: BLE001 - classified below, always one line
            self._open_fallback(exc)
        if migrate and self._store is not None:
            self._migrate_legacy()

    # ------------------------------------------------------------ opening

    def _open_fallback(self, exc: BaseException) -> None:
        if _is_corrupt(exc):
            raise self._corrupt_error(exc) from exc
        if _is_read_only(exc):
            try:
                self._ro = _ReadOnlyStore(self.directory)
            except sqlite3.Error as ro_exc:
                if _is_corrupt(ro_exc):
                    raise self._corrupt_error(ro_exc) from ro_exc
                raise CacheError(f"cache directory {self.directory} is not writable and holds no readable "
                                 f"cache ({exc}); choose another cache directory or set ${CACHE_ENV_VAR} to a "
                                 "writable directory", option="cache_dir") from exc
            self.read_only = True
            warnings.warn(f"cache {self.directory} is read-only: cached answers are used, new ones are "
                          "not saved", CacheReadOnlyWarning, stacklevel=3)
            return
        if isinstance(exc, OSError):
            raise CacheError(f"cannot open cache directory {self.directory}: {exc.strerror or exc}") from exc
        raise CacheError(f"cannot open cache {self.db_path}: {type(exc).__name__}: {exc}") from exc

    def _corrupt_error(self, exc: BaseException) -> CacheError:
        return CacheError(f"cache database {self.db_path} is corrupt ({exc}); run "
                          f"`clusterdiv cache clear --cache-dir {self.directory}` to recreate it")

    def _migrate_legacy(self) -> None:
        """Rewrite pickled entries of older versions as JSON; drop those that are not plain data."""
        assert self._store is not None
        try:
            rows = self._store._sql("SELECT key, raw FROM Cache WHERE mode = ?", (MODE_PICKLE,)).fetchall()
        except sqlite3.Error:
            return
        for key, raw in rows:
            if not raw:
                self._store._sql("DELETE FROM Cache WHERE key = ? AND raw = 0", (key,))
                self.corrupt["legacy"] += 1
                continue
            try:
                value = self._store.get(key, default=None)
            except CorruptEntry:
                self._store.delete(key)
                self.corrupt[str(key).split(":", 1)[0]] += 1
                continue
            if value is not None:
                self._store.set(key, value)
                self.migrated += 1

    def _guard(self, exc: BaseException) -> BaseException:
        """A database error in use: the file is corrupt (one line naming it) or something else."""
        if _is_corrupt(exc):
            return self._corrupt_error(exc)
        return exc

    # ------------------------------------------------------------ use

    def get(self, key: str) -> Any | None:
        namespace = key.split(":", 1)[0]
        try:
            value = self._get(key)
        except CorruptEntry:
            self.corrupt[namespace] += 1
            self.delete(key)
            value = None
        except sqlite3.Error as exc:
            raise self._guard(exc) from exc
        if value is None:
            self.misses[namespace] += 1
        else:
            self.hits[namespace] += 1
        return value

    def _get(self, key: str) -> Any | None:
        if self._store is not None:
            return self._store.get(key, default=None)
        assert self._ro is not None
        row = self._ro.row(key)
        return None if row is None else self._ro._disk.fetch(row[0], row[1], row[2], False)

    def reject(self, key: str, *, again: bool = False) -> None:
        """The caller found a hit unusable (e.g. wrong shape): count it as corrupt, drop it.

        `again=True`: the same key read again in one `get_many` and rejected already; only the hit
        becomes a miss (a second `get` would have missed)."""
        namespace = key.split(":", 1)[0]
        self.hits[namespace] -= 1
        self.misses[namespace] += 1
        if again:
            return
        self.corrupt[namespace] += 1
        self.delete(key)

    def delete(self, key: str) -> None:
        if self._store is not None:
            with contextlib.suppress(sqlite3.Error):
                self._store.delete(key)

    def set(self, key: str, value: Any) -> None:
        if self._store is None:
            return  # read-only: warned once when opened
        try:
            self._store.set(key, value)
        except sqlite3.Error as exc:
            if _is_read_only(exc):
                self._became_read_only(exc)
                return
            raise self._guard(exc) from exc
        self.writes[key.split(":", 1)[0]] += 1

    def _became_read_only(self, exc: BaseException) -> None:
        warnings.warn(f"cache {self.directory} cannot be written ({exc}): new answers are not saved",
                      CacheReadOnlyWarning, stacklevel=3)
        store, self._store = self._store, None
        self.read_only = True
        with contextlib.suppress(Exception):
            self._ro = _ReadOnlyStore(self.directory)
        with contextlib.suppress(Exception):
            assert store is not None
            store.close()

    def get_many(self, keys: list[str], *, batch: int = 500) -> list[Any | None]:
        """`get` of every key (None for a miss), read in one query per `batch` keys, counted like `get`."""
        found: dict[str, Any] = {}
        bad: list[str] = []
        unique = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(unique), batch):
                for key, value in self._rows(unique[start : start + batch]):
                    if isinstance(value, CorruptEntry):
                        bad.append(key)
                    else:
                        found[key] = value
        except sqlite3.Error as exc:
            raise self._guard(exc) from exc
        for key in bad:
            self.corrupt[key.split(":", 1)[0]] += 1
            self.delete(key)
        out = []
        for key in keys:
            value = found.get(key)
            (self.misses if value is None else self.hits)[key.split(":", 1)[0]] += 1
            out.append(value)
        return out

    def _rows(self, keys: list[str]) -> list[tuple[str, Any]]:
        """(key, value or the CorruptEntry raised decoding it) for the stored ones among `keys`."""
        import time

        marks = ",".join("?" * len(keys))
        select = (f"SELECT key, mode, filename, value FROM Cache WHERE raw = 1 AND key IN ({marks})"
                  " AND (expire_time IS NULL OR expire_time > ?)")
        if self._store is not None:
            rows, disk = self._store._sql(select, (*keys, time.time())).fetchall(), self._store._disk
        else:
            assert self._ro is not None
            rows, disk = self._ro._conn.execute(select, (*keys, time.time())).fetchall(), self._ro._disk
        out: list[tuple[str, Any]] = []
        for key, mode, filename, value in rows:
            try:
                out.append((str(key), disk.fetch(mode, filename, value, False)))
            except CorruptEntry as exc:
                out.append((str(key), exc))
            except OSError:  # a value file deleted meanwhile: a miss, as in diskcache's own get
                continue
        return out

    def info(self) -> dict[str, Any]:
        """Entry counts per namespace and bytes on disk, for `clusterdiv cache info`."""
        per_namespace: Counter[str] = Counter()
        try:
            if self._store is not None:
                rows = self._store._sql("SELECT key FROM Cache WHERE raw = 1").fetchall()
            else:
                assert self._ro is not None
                rows = self._ro._conn.execute("SELECT key FROM Cache WHERE raw = 1").fetchall()
            for (key,) in rows:
                per_namespace[str(key).split(":", 1)[0]] += 1
            size = int(self._store.volume()) if self._store is not None else self.db_path.stat().st_size
        except sqlite3.Error as exc:
            raise self._guard(exc) from exc
        return {
            "directory": str(self.directory),
            "entries": sum(per_namespace.values()),
            "entries_by_kind": dict(sorted(per_namespace.items())),
            "size_bytes": size,
            "read_only": self.read_only,
            "migrated_legacy_entries": self.migrated,
        }

    def clear(self) -> int:
        if self._store is None:
            raise CacheError(f"cache {self.directory} is read-only; it cannot be cleared from here")
        try:
            return int(self._store.clear())
        except sqlite3.Error as exc:
            raise self._guard(exc) from exc

    @staticmethod
    def reset(directory: str | Path | None = None) -> Path:
        """Delete a cache database that cannot be opened (and its value files); returns the folder."""
        folder = Path(directory) if directory is not None else default_cache_dir()
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        for sub in folder.glob("[0-9a-f][0-9a-f]"):  # diskcache's value-file folders
            if sub.is_dir():
                for file in sub.rglob("*.val"):
                    file.unlink(missing_ok=True)
                for d in sorted((p for p in sub.rglob("*") if p.is_dir()), reverse=True):
                    with contextlib.suppress(OSError):
                        d.rmdir()
                with contextlib.suppress(OSError):
                    sub.rmdir()
        return folder

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._ro is not None:
            self._ro.close()

    def __enter__(self) -> ModelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
