"""Running the library's async stages from synchronous code, with or without an event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `make()` to completion and return its result.

    `asyncio.run` is refused inside a running event loop (a Jupyter kernel or a web server runs
    one), so there the coroutine runs on its own loop in a worker thread while this call waits.
    `make` is a factory so the coroutine is created on the loop that runs it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="clusterdiv-async") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
