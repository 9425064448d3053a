"""Shared fixtures: an isolated cache per test, the fake LLM plugin, small corpora built in code,
Chromium pages for the tests that drive the explorer page in a browser."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
# `make test` runs pytest-xdist workers side by side; each takes its share of the cores for llama.cpp
# and torch (and passes it to its subprocesses), as a Ray actor does. Every process taking every core
# made two local-model runs at once 4x slower each (eval/bench_llm_threads.py).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    from clusterdiv.llm.local import available_cpus

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available_cpus() // _WORKERS)))


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("CLUSTERDIV_CACHE_DIR", str(path))
    return path


@pytest.fixture
def cache(cache_dir: Path):
    from clusterdiv.core.cache import ModelCache

    with ModelCache(cache_dir) as store:
        yield store


@pytest.fixture(scope="session")
def embedder():
    from clusterdiv.modes.embed import Embedder

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
    """Environment for CLI subprocesses: isolated cache, fake plugin importable, call log (test_cli.cli_env;
    the history database stays `_isolated_history`'s)."""
    from test_cli import cli_env

    return cli_env(tmp_path, cache=cache_dir, history=False)


@pytest.fixture(autouse=True)
def _isolated_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`score` records every run by default; no test may write the user's real history database."""
    path = tmp_path / "history.sqlite"
    monkeypatch.setenv("CLUSTERDIV_HISTORY_DB", str(path))
    return path


CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


@dataclass
class BrowserPage:
    """A Playwright page and what it logged: console messages and uncaught page errors, in order."""

    page: Any
    console: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m or "Refused to" in m]


@pytest.fixture
def browser_page() -> Iterator[Callable[..., BrowserPage]]:
    """Open pages in headless Chromium (`browser_page(accept_downloads=True)`), closed after the test.

    Skips when Chromium or Playwright is absent (`make install` adds both).
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (make install adds it)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)

        def open_page(**options: Any) -> BrowserPage:
            opened = BrowserPage(browser.new_page(**options))
            opened.page.on("console", lambda msg: opened.console.append(msg.text))
            opened.page.on("pageerror", lambda exc: opened.console.append(str(exc)))
            return opened

        try:
            yield open_page
        finally:
            browser.close()
