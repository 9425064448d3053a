"""Warm path (issue 15): nothing heavy is imported for cached work; the cache is read in batches."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from clusterdiv.core.cache import ModelCache


def test_plugins_metrics_and_the_local_fingerprint_import_no_litellm():
    code = (
        "import sys\n"
        "from clusterdiv.metrics.registry import metric_names\n"
        "from clusterdiv.llm.plugins import get_registry\n"
        "metric_names()\n"
        "assert get_registry().fingerprint('local/smollm2').startswith('local/smollm2@sha256:')\n"
        "heavy = [m for m in ('litellm', 'llama_cpp', 'torch', 'umap', 'hdbscan') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CLUSTERDIV_PLUGINS"}  # the fake model imports litellm
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)


def test_get_many_is_get_of_every_key_with_the_same_counts(tmp_path):
    with ModelCache(tmp_path / "c") as cache:
        cache.set("embedding:a", np.ones(3, dtype=np.float32).tobytes())
        cache.set("llm:b", {"value": {"intent": "x"}})
        cache._store._sql("UPDATE Cache SET value = ? WHERE key = ?", ('{"broken', "llm:b"))  # type: ignore[union-attr]
        keys = ["embedding:a", "embedding:missing", "llm:b", "embedding:a"] + [f"embedding:k{i}" for i in range(1200)]
        got = cache.get_many(keys, batch=500)
        assert got[0] == got[3] == np.ones(3, dtype=np.float32).tobytes()
        assert got[1] is None and got[2] is None and all(v is None for v in got[4:])
        assert cache.hits["embedding"] == 2 and cache.hits["llm"] == 0
        assert cache.misses["embedding"] == 1201 and cache.misses["llm"] == 1
        assert cache.corrupt["llm"] == 1 and cache.get("llm:b") is None  # the damaged entry is gone
