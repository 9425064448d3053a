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
import json
import os
import sqlite3
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import diskcache
import platformdirs
from diskcache.core import MODE_PICKLE

from clusterdiv.core.cache_store import (
    DB_NAME,
    CorruptEntry,
    ReadOnlyStore,
    SafeDisk,
    is_corrupt,
    is_read_only,
    private_dir,
    private_file,
)
from clusterdiv.core.errors import InputError

CACHE_ENV_VAR = "CLUSTERDIV_CACHE_DIR"
# diskcache evicts past 1 GB by default; evicting paid answers would make reruns silently expensive.
_NO_EVICTION = {"eviction_policy": "none", "size_limit": 2**62}


class CacheError(InputError):
    """The cache database cannot be used as it is (corrupt, unreadable): exit code 2, file named."""


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


class ModelCache:
    """A diskcache store plus per-namespace hit/miss/corrupt counters for the run's report."""

    def __init__(self, directory: str | Path | None = None, *, migrate: bool = True):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.db_path = self.directory / DB_NAME
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.corrupt: Counter[str] = Counter()
        # Hits on answers this cache object wrote itself: a run asking again for what it just computed
        # (the metrics re-embedding the texts the modes embedded) is no answer saved by an earlier run,
        # so a cold run must not report it as a cache hit (issue 32). Kept as hashes of the keys.
        self.reused: Counter[str] = Counter()
        self._written: set[int] = set()
        self.migrated = 0
        self.read_only = False
        self._ro: ReadOnlyStore | None = None
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
        if is_corrupt(exc):
            raise self._corrupt_error(exc) from exc
        if is_read_only(exc):
            try:
                self._ro = ReadOnlyStore(self.directory)
            except sqlite3.Error as ro_exc:
                if is_corrupt(ro_exc):
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
        if is_corrupt(exc):
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
            self.reused[namespace] += hash(key) in self._written
        return value

    def saved_hits(self, namespace: str) -> int:
        """Hits answered by what an earlier run saved: `hits` less the ones on this object's own writes."""
        return self.hits[namespace] - self.reused[namespace]

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
        self.reused[namespace] -= hash(key) in self._written
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
            if is_read_only(exc):
                self._became_read_only(exc)
                return
            raise self._guard(exc) from exc
        self.writes[key.split(":", 1)[0]] += 1
        self._written.add(hash(key))

    def _became_read_only(self, exc: BaseException) -> None:
        warnings.warn(f"cache {self.directory} cannot be written ({exc}): new answers are not saved",
                      CacheReadOnlyWarning, stacklevel=3)
        store, self._store = self._store, None
        self.read_only = True
        with contextlib.suppress(Exception):
            self._ro = ReadOnlyStore(self.directory)
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
            namespace = key.split(":", 1)[0]
            (self.misses if value is None else self.hits)[namespace] += 1
            if value is not None:
                self.reused[namespace] += hash(key) in self._written
            out.append(value)
        return out

    def stored(self, keys: list[str], *, batch: int = 500) -> set[str]:
        """Which of `keys` hold an answer, without counting hits or misses: a look ahead at what a step
        will cost (`llm.structured.announce_calls`) is not the step's own reads."""
        unique = list(dict.fromkeys(keys))
        try:
            return {key for start in range(0, len(unique), batch)
                    for key, value in self._rows(unique[start : start + batch]) if not isinstance(value, CorruptEntry)}
        except sqlite3.Error as exc:
            raise self._guard(exc) from exc

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
