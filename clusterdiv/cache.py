"""Persistent cache for every paid model response (LLM completions and embeddings).

Keys are content hashes of everything that can change an answer (model identity, prompt file
hash, generation parameters, output schema, input text), never file names, so a changed prompt
or model invalidates exactly the entries it affects and nothing else. Each answer is written the
moment it arrives: diskcache commits every `set` to SQLite, so a crash or Ctrl-C loses nothing
that was already paid for and the next run resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import diskcache
import platformdirs

CACHE_ENV_VAR = "CLUSTERDIV_CACHE_DIR"
# diskcache evicts past 1 GB by default; evicting paid answers would make reruns silently expensive.
_NO_EVICTION = {"eviction_policy": "none", "size_limit": 2**62}


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
    """A diskcache store plus per-namespace hit/miss counters for the run's report."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._store = diskcache.Cache(str(self.directory), **_NO_EVICTION)
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()

    def get(self, key: str) -> Any | None:
        namespace = key.split(":", 1)[0]
        value = self._store.get(key, default=None)
        if value is None:
            self.misses[namespace] += 1
        else:
            self.hits[namespace] += 1
        return value

    def set(self, key: str, value: Any) -> None:
        self._store.set(key, value)
        self.writes[key.split(":", 1)[0]] += 1

    def get_many(self, keys: list[str]) -> list[Any | None]:
        return [self.get(k) for k in keys]

    def info(self) -> dict[str, Any]:
        """Entry counts per namespace and bytes on disk, for `clusterdiv cache info`."""
        per_namespace: Counter[str] = Counter()
        for key in self._store.iterkeys():
            per_namespace[str(key).split(":", 1)[0]] += 1
        return {
            "directory": str(self.directory),
            "entries": sum(per_namespace.values()),
            "entries_by_kind": dict(sorted(per_namespace.items())),
            "size_bytes": int(self._store.volume()),
        }

    def clear(self) -> int:
        return int(self._store.clear())

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> ModelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
