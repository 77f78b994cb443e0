"""Driving a stream inside a run: one implementation for models and chains.

A generator must not stay attached across ``yield`` (the consumer would run inside the
run's context): the run is opened, made current around each step of the inner stream (and
while ``on_chunk`` delivers the chunk's events), and closed exactly once: with ``finish``
when the stream ends or the consumer closes it early (then marked
``spanhook.stream.closed_early``), with ``on_*_error`` when it fails or is cancelled. The
inner stream is closed first, inside the run, so that nested runs end before this one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, TypeVar

from spanhook.runtime.run import Run
from spanhook.tracing import attributes as attr

T = TypeVar("T")


def _close_inner(run: Run, chunks: Iterator[Any]) -> None:
    close = getattr(chunks, "close", None)
    if close is None:
        return
    token = run.attach()
    try:
        close()
    except Exception:  # a stream failing while it is closed: the run still ends
        pass
    finally:
        run.detach(token)


async def aclose_inner(run: Run, chunks: AsyncIterator[Any]) -> None:
    """Close ``chunks`` inside ``run``; a failure while closing is not the run's error."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is None:
        return
    token = run.attach()
    try:
        await aclose()
    except Exception:  # a stream failing while it is closed: the run still ends
        pass
    finally:
        run.detach(token)


def drive(
    run: Run,
    chunks: Iterator[T],
    finish: Callable[[list[T]], None],
    on_chunk: Callable[[T], None] | None = None,
    fail: Callable[[list[T]], None] | None = None,
) -> Generator[T, None, None]:
    """Yield ``chunks`` inside ``run``; ``finish(collected)`` sets the run's result,
    ``fail(collected)`` what its error event carries."""
    collected: list[T] = []
    run.open()
    try:
        while True:
            token = run.attach()
            try:
                chunk = next(chunks)
                collected.append(chunk)
                if on_chunk is not None:
                    on_chunk(chunk)  # before the consumer gets the chunk
            except StopIteration:
                break
            finally:
                run.detach(token)
            yield chunk
    except GeneratorExit:
        try:
            _close_inner(run, chunks)
        finally:
            run.set_attributes({attr.STREAM_CLOSED_EARLY: True})
            finish(collected)
            run.close_ok()
        raise
    except BaseException as e:
        try:
            _close_inner(run, chunks)
        finally:
            if fail is not None:
                fail(collected)
            run.close_error(e)
        raise
    finish(collected)
    run.close_ok()


async def adrive(
    run: Run,
    chunks: AsyncIterator[T],
    finish: Callable[[list[T]], None],
    on_chunk: Callable[[T], Awaitable[None]] | None = None,
    fail: Callable[[list[T]], None] | None = None,
) -> AsyncGenerator[T, None]:
    """The async twin of :func:`drive`."""
    collected: list[T] = []
    await run.aopen()
    try:
        while True:
            token = run.attach()
            try:
                chunk = await chunks.__anext__()
                collected.append(chunk)
                if on_chunk is not None:
                    await on_chunk(chunk)
            except StopAsyncIteration:
                break
            finally:
                run.detach(token)
            yield chunk
    except GeneratorExit:
        try:  # the run ends even if closing the inner stream is cancelled
            await aclose_inner(run, chunks)
        finally:
            run.set_attributes({attr.STREAM_CLOSED_EARLY: True})
            finish(collected)
            await run.aclose_ok()
        raise
    except BaseException as e:
        try:
            await aclose_inner(run, chunks)
        finally:
            if fail is not None:
                fail(collected)
            await run.aclose_error(e)
        raise
    finish(collected)
    await run.aclose_ok()
