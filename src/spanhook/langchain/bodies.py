"""Making a langchain-core run's span current while its body executes, inside the body's
own context.

- Runnables, tools and LangGraph nodes run their body in a copied ``contextvars.Context``
  prepared by ``_set_config_context`` (langchain-core's and LangGraph's). Its wrapper makes
  the parent run of the config's callback manager current *in that copy*, which is thrown
  away with the body: the caller's context is never touched, nothing is ever detached.
- Chat-model and LLM bodies (``_generate_with_cache``, ``_generate_helper``) run in the
  caller's context: the wrappers attach the model run around the (awaited) body and reset
  it in the same frame, so whatever else the body sets in its context stays, as without
  spanhook.
- A sync stream (a model's ``stream``, a runnable's ``_transform_stream_with_config``) is
  driven step by step inside a context the stream owns; an async model stream attaches its
  run around each step only, never across a ``yield``. So an open, closed-early or abandoned
  stream leaves the consumer's current span unchanged.
"""

from __future__ import annotations

import contextvars
import functools
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from spanhook.langchain import _runtime as rt
from spanhook.langchain.tracer import STREAM_SLOT, TRACER, StreamSlot

_runs = TRACER.runs


def wrap_set_config_context(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _set_config_context(config: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(config, *args, **kwargs) if args or kwargs else original(config)
        if config:
            parent_run_id = getattr(config.get("callbacks"), "parent_run_id", None)
            run = _runs.get(parent_run_id) if parent_run_id is not None else None
            if run is not None:  # we are in the body's own, freshly copied context
                rt.attach_run(run)
        return result

    return _set_config_context


def _model_run(
    args: tuple[Any, ...], kwargs: dict[str, Any], key: str, manager_at: int, many: bool
) -> rt.Run | None:
    """The run of a model body's run manager (``key=`` or positional ``manager_at``)."""
    manager = (
        kwargs.get(key) if key in kwargs else (args[manager_at] if len(args) > manager_at else None)
    )
    if many and manager:
        manager = manager[0]
    return _runs.get(manager.run_id) if manager is not None else None


def wrap_generate(original: Callable[..., Any], manager_at: int, many: bool) -> Callable[..., Any]:
    """A model body taking its run manager (``run_manager=`` or ``run_managers=``, or
    positional argument ``manager_at``)."""
    key = "run_managers" if many else "run_manager"

    @functools.wraps(original)
    def body(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = _model_run(args, kwargs, key, manager_at, many)
        if run is None:
            return original(self, *args, **kwargs)
        token = rt.attach_run(run)  # a plain call: attached and detached in this frame
        try:
            return original(self, *args, **kwargs)
        finally:
            rt.detach(token)

    return body


def wrap_agenerate(original: Callable[..., Any], manager_at: int, many: bool) -> Callable[..., Any]:
    key = "run_managers" if many else "run_manager"

    @functools.wraps(original)
    async def body(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = _model_run(args, kwargs, key, manager_at, many)
        if run is None:
            return await original(self, *args, **kwargs)
        token = rt.attach_run(run)
        try:
            return await original(self, *args, **kwargs)
        finally:
            rt.detach(token)

    return body


def drive(chunks: Iterator[Any], attach: bool) -> Iterator[Any]:
    """Run each step of ``chunks`` in a context this stream owns; the run started in its
    first step is current there for all later steps. Closed early, it closes the streams
    created inside it first (langchain-core leaves them to the garbage collector), so that
    nested runs end, marked, before this one."""
    ctx = contextvars.copy_context()
    slot = StreamSlot(attach)
    ctx.run(STREAM_SLOT.set, slot)
    try:
        while True:
            try:
                chunk = ctx.run(next, chunks)
            except StopIteration:
                return
            yield chunk
    except GeneratorExit:
        if slot.run is not None:
            TRACER.closed_early.add(slot.run.run_id)
        for ref in reversed(slot.children):
            child = ref()
            if child is not None:
                ctx.run(child.close)
        ctx.run(chunks.close)  # type: ignore[attr-defined]
        raise


async def adrive(chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The async twin of :func:`drive`: the stream's run is current around each step."""
    slot = StreamSlot(attach=True)
    try:
        while True:
            slot_token = STREAM_SLOT.set(slot)
            run = slot.run
            token = rt.attach(rt.run_context(run) if run is not None else rt.current_context())
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            finally:
                rt.detach(token)
                STREAM_SLOT.reset(slot_token)
            yield chunk
    except GeneratorExit:
        await _aclose(chunks, slot)
        raise
    except BaseException:
        await _aclose(chunks, slot)
        raise


async def _aclose(chunks: AsyncIterator[Any], slot: StreamSlot) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is None or getattr(chunks, "ag_running", False):
        return  # a stream still inside a step is closed by whoever runs that step
    run = slot.run
    token = rt.attach(rt.run_context(run)) if run is not None else None
    try:
        await aclose()
    finally:
        if token is not None:
            rt.detach(token)


def wrap_stream(
    original: Callable[..., Iterator[Any]], attach: bool = True
) -> Callable[..., Iterator[Any]]:
    """A sync stream method; ``attach``: its run's body has no context of its own (models)."""

    @functools.wraps(original)
    def stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        driven = drive(original(self, *args, **kwargs), attach)
        outer = STREAM_SLOT.get()
        if outer is not None:  # created inside another stream's step
            outer.children.append(weakref.ref(driven))
        return driven

    return stream


def wrap_astream(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(original)
    def astream(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return adrive(original(self, *args, **kwargs))

    return astream
