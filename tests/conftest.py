"""Shared fixtures: an isolated cache per test, the fake LLM plugin, small corpora built in code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).parent
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The fake provider is registered through the same plugin path a third-party plugin would use.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
os.environ["CLUSTERDIV_PLUGINS"] = "fake_llm"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("CLUSTERDIV_CACHE_DIR", str(path))
    return path


@pytest.fixture
def cache(cache_dir: Path):
    from clusterdiv.cache import ModelCache

    with ModelCache(cache_dir) as store:
        yield store


@pytest.fixture(scope="session")
def embedder():
    from clusterdiv.embed import Embedder

    return Embedder()


@pytest.fixture
def fake_llm():
    import fake_llm

    from clusterdiv.llm.plugins import get_registry

    get_registry()  # loads plugins (and the fake) once
    fake_llm.HANDLER.calls.clear()
    return fake_llm.HANDLER


@pytest.fixture
def subprocess_env(cache_dir: Path, tmp_path: Path) -> dict[str, str]:
    """Environment for CLI subprocesses: isolated cache, fake plugin importable, call log."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    env["CLUSTERDIV_CACHE_DIR"] = str(cache_dir)
    env["FAKE_LLM_CALL_LOG"] = str(tmp_path / "calls.log")
    return env


@pytest.fixture(autouse=True)
def _isolated_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`score` records every run by default; no test may write the user's real history database."""
    path = tmp_path / "history.sqlite"
    monkeypatch.setenv("CLUSTERDIV_HISTORY_DB", str(path))
    return path
