"""Carrying the current run (scope, parent, OTel context) into threads and executors.

Everything spanhook knows about the current run lives in ``contextvars``, which asyncio
tasks inherit but thread pools do not. These helpers copy the context at submit time.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def carry(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn`` bound to a copy of the caller's context: call it in any thread and runs it
    starts nest under the caller's run, with the caller's handlers in scope."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def carried(*args: P.args, **kwargs: P.kwargs) -> T:
        return ctx.run(fn, *args, **kwargs)

    return carried


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in a copy of the submitter's context."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return submit_with_context(super(), fn, *args, **kwargs)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        **kwargs: Any,
    ) -> Iterator[T]:
        contexts = (contextvars.copy_context() for _ in iter(int, 1))

        def call(ctx: contextvars.Context, *args: Any) -> T:
            return ctx.run(fn, *args)

        return super().map(call, contexts, *iterables, timeout=timeout, chunksize=chunksize)


def submit_with_context(
    executor: Any, fn: Callable[..., T], *args: Any, **kwargs: Any
) -> Future[T]:
    """Submit ``fn`` to any ``concurrent.futures`` executor, carrying the current run."""
    ctx = contextvars.copy_context()
    return executor.submit(ctx.run, fn, *args, **kwargs)  # type: ignore[no-any-return]
