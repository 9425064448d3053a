"""Running the library's async stages from synchronous code, with or without an event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import signal
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

INTERRUPT_GRACE_S = 3.0
"""After Ctrl-C, how long the model calls already sent may take to answer (and be cached) before
the run stops without them."""


class _Interrupt:
    """What one `run_sync` loop knows of Ctrl-C: whether it came, which tasks wait for an answer."""

    def __init__(self) -> None:
        self.requested = False
        self.calling: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


_INTERRUPT: contextvars.ContextVar[_Interrupt | None] = contextvars.ContextVar("clusterdiv_interrupt", default=None)


def start_call() -> bool:
    """Whether a model call may start now: False once Ctrl-C asked the run to stop. The calling task
    is then waited for (INTERRUPT_GRACE_S at most), so the answer it asked for is not lost."""
    state = _INTERRUPT.get()
    if state is None:
        return True
    if state.requested:
        return False
    task = asyncio.current_task()
    if task is not None:
        state.calling.add(task)
    return True


def unless_interrupted(call: Callable[[], T]) -> Callable[[], T]:
    """`call` for another thread's queue (the local model's one thread): by the time it starts there,
    Ctrl-C may have come, and then it is not made (nor waited for: it raises CancelledError)."""
    state = _INTERRUPT.get()

    def run() -> T:
        if state is not None and state.requested:
            raise asyncio.CancelledError
        return call()

    return run


async def _interruptible(make: Callable[[], Coroutine[Any, Any, T]]) -> tuple[bool, Any]:
    """`make()` with Ctrl-C drained instead of cancelling everything at once.

    asyncio's own handler cancels every task on the first Ctrl-C, so the answers of requests already
    sent were thrown away, and a llama.cpp call, which no cancel reaches, still held the exit until it
    finished. Here the first Ctrl-C stops new calls (see `start_call`), the tasks waiting for an answer
    get INTERRUPT_GRACE_S to receive and cache it, and what is left is cancelled; a second Ctrl-C
    cancels at once. (interrupted, result) comes back.
    """
    loop = asyncio.get_running_loop()
    state = _Interrupt()
    token = _INTERRUPT.set(state)
    main = asyncio.ensure_future(make())  # its tasks inherit `state` through the context
    _INTERRUPT.reset(token)
    asked, hurry = loop.create_future(), loop.create_future()

    def on_sigint() -> None:
        state.requested = True
        for signal_future in (asked, hurry):
            if not signal_future.done():
                signal_future.set_result(None)
                break

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        await asyncio.wait({main, asked}, return_when=asyncio.FIRST_COMPLETED)
        if not asked.done():
            return False, main.result()
        deadline = loop.time() + INTERRUPT_GRACE_S
        while not hurry.done() and (calling := {t for t in state.calling if not t.done()}) \
                and loop.time() < deadline:
            await asyncio.wait({*calling, hurry}, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED)
        if main.done() and not main.cancelled():
            main.exception()  # whatever it raised on the way out is superseded by the interrupt
        return True, None
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `make()` to completion and return its result.

    `asyncio.run` is refused inside a running event loop (a Jupyter kernel or a web server runs
    one), so there the coroutine runs on its own loop in a worker thread while this call waits.
    `make` is a factory so the coroutine is created on the loop that runs it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if threading.current_thread() is not threading.main_thread() \
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return asyncio.run(make())  # Ctrl-C is not ours to handle here
        interrupted, result = asyncio.run(_interruptible(make))
        if interrupted:
            raise KeyboardInterrupt from None
        return result
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="clusterdiv-async") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
