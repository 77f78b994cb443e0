"""Running an async handler's coroutine to completion from sync code.

A sync run whose handlers include coroutines runs each one on spanhook's handler loop (one
daemon thread, shared) and waits for it, in the caller's contextvars context, without
touching any event loop the caller may be running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any

from spanhook._state import STATE

_loop_lock = threading.Lock()


def _get_handler_loop() -> asyncio.AbstractEventLoop:
    with _loop_lock:
        loop = STATE.handler_loop
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            t = threading.Thread(
                target=loop.run_forever, name="spanhook-async-handlers", daemon=True
            )
            t.start()
            STATE.handler_loop = loop
        return loop


_in_handler_coroutine: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "spanhook_in_handler_coroutine", default=False
)


def _run_on_fresh_loop(coro: Coroutine[Any, Any, Any], ctx: contextvars.Context) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = ctx.run(asyncio.run, coro)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name="spanhook-nested-async-handlers", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def run_coroutine_blocking(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an async handler's coroutine to completion from sync code, in the caller's
    contextvars context, without touching any event loop the caller may be running."""
    ctx = contextvars.copy_context()
    if _in_handler_coroutine.get():
        # A handler's coroutine made a sync run whose handlers include coroutines: the shared
        # handler loop is busy with (blocked on) that coroutine, so use a loop of its own.
        return _run_on_fresh_loop(coro, ctx)
    ctx.run(_in_handler_coroutine.set, True)
    loop = _get_handler_loop()
    fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def start() -> None:
        task = ctx.run(loop.create_task, coro)

        def done(t: asyncio.Task[Any]) -> None:
            if t.cancelled():
                fut.cancel()
            elif t.exception() is not None:
                fut.set_exception(t.exception())
            else:
                fut.set_result(t.result())

        task.add_done_callback(done)

    loop.call_soon_threadsafe(start)
    return fut.result()
