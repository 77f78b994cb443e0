"""One algorithm, two drivers.

An algorithm that does I/O (the agent loop, the retry loop, sequential chains) is written
once, as a generator that yields :class:`Call` steps and receives each step's result (or has
its exception thrown in). :func:`run_flow` performs the steps with plain calls,
:func:`arun_flow` with awaits of the async twin of the same method (``invoke`` ->
``ainvoke``, ``on_text`` -> ``aon_text``, ``_generate_one`` -> ``_agenerate_one``). Every
decision lives in the generator, so the sync and async paths cannot drift (the style of
httpx's ``Auth.auth_flow``). :func:`to_async` drives a sync iterator from async code,
:func:`in_worker` a sync call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any, TypeVar

R = TypeVar("R")
T = TypeVar("T")

_ASYNC_NAMES = {"__call__": "acall"}


def async_name(name: str) -> str:
    """The async twin of a method name: ``run`` -> ``arun``, ``_call`` -> ``_acall``."""
    special = _ASYNC_NAMES.get(name)
    if special is not None:
        return special
    return "_a" + name[1:] if name.startswith("_") else "a" + name


class Call:
    """A step of a flow: call ``target.name(*args, **kwargs)`` or await its async twin."""

    __slots__ = ("args", "kwargs", "name", "target")

    def __init__(self, target: Any, name: str, /, *args: Any, **kwargs: Any) -> None:
        self.target = target
        self.name = name
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Call({type(self.target).__name__}.{self.name})"


Flow = Generator[Call, Any, R]


class _Clock:
    """``sleep`` for flows: ``time.sleep`` in the sync driver, ``asyncio.sleep`` in the async one."""

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    @staticmethod
    async def asleep(seconds: float) -> None:
        await asyncio.sleep(seconds)


CLOCK = _Clock()


def run_flow(flow: Flow[R]) -> R:
    """Drive ``flow`` with calls; a step's exception is thrown into the flow."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = result = None
        try:
            result = getattr(step.target, step.name)(*step.args, **step.kwargs)
        except BaseException as e:  # the flow decides: it handles it or lets it propagate
            error = e


async def arun_flow(flow: Flow[R]) -> R:
    """Drive ``flow`` with awaits of each step's async twin."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = result = None
        try:
            method = getattr(step.target, async_name(step.name))
            result = await method(*step.args, **step.kwargs)
        except BaseException as e:
            error = e


async def in_worker(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """``fn(*args, **kwargs)`` in a worker thread that carries the current context (and so
    the current run): the async twin of a sync call that would block the event loop."""
    ctx = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: ctx.run(fn, *args, **kwargs)
    )


def failing(error: Exception) -> Iterator[Any]:
    """A stream that fails with ``error`` on its first step."""
    raise error
    yield  # pragma: no cover - makes this a generator


def _close_quietly(it: Iterator[Any]) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


async def to_async(it: Iterator[T]) -> AsyncIterator[T]:
    """Drive a sync iterator from async code, one step per worker-thread hop, so a slow
    model never blocks the event loop."""
    loop = asyncio.get_running_loop()
    sentinel = object()

    def step(ctx: contextvars.Context) -> Any:
        return ctx.run(next, it, sentinel)

    try:
        while True:
            ctx = contextvars.copy_context()
            item = await loop.run_in_executor(None, step, ctx)
            if item is sentinel:
                return
            yield item
    finally:
        _close_quietly(it)
