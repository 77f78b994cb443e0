"""The bridge: delivers one run event to the classic handlers in scope.

It calls each handler with langchain-core's positional and keyword arguments, honours the
``ignore_*`` flags, ``raise_error`` and ``run_inline``, falls back from
``on_chat_model_start`` to ``on_llm_start``, and isolates a failing handler: its exception
is logged with the handler's name and the event, and the run goes on.

Per handler class, which events it really implements is computed once, so a handler that
only overrides ``on_llm_new_token`` costs nothing on chain events.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from spanhook.callbacks.base import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.schema.messages import get_buffer_string

logger = logging.getLogger("spanhook.callbacks")

#: The ``ignore_*`` flag that silences each event (``None``: no flag, as in langchain-core).
IGNORE_FLAG: dict[str, str | None] = {
    "on_llm_start": "ignore_llm",
    "on_chat_model_start": "ignore_chat_model",
    "on_llm_new_token": "ignore_llm",
    "on_llm_end": "ignore_llm",
    "on_llm_error": "ignore_llm",
    "on_chain_start": "ignore_chain",
    "on_chain_end": "ignore_chain",
    "on_chain_error": "ignore_chain",
    "on_tool_start": "ignore_agent",
    "on_tool_end": "ignore_agent",
    "on_tool_error": "ignore_agent",
    "on_retriever_start": "ignore_retriever",
    "on_retriever_end": "ignore_retriever",
    "on_retriever_error": "ignore_retriever",
    "on_agent_action": "ignore_agent",
    "on_agent_finish": "ignore_agent",
    "on_text": None,
    "on_retry": "ignore_retry",
    "on_custom_event": "ignore_custom_event",
}
EVENTS = frozenset(IGNORE_FLAG)

_SKIP, _SYNC, _ASYNC, _CHAT_FALLBACK = 0, 1, 2, 3
_Plan = dict[str, int]
_plans: dict[type, _Plan] = {}
_noop_functions: set[Any] = set()


def _collect_noops(*classes: type) -> None:
    for cls in classes:
        for event in EVENTS:
            fn = cls.__dict__.get(event)
            if fn is not None and event != "on_chat_model_start":
                _noop_functions.add(fn)


_collect_noops(BaseCallbackHandler, AsyncCallbackHandler)

#: The base classes' ``ignore_*`` properties, which always say False: a handler whose class
#: keeps them needs no flag lookup per event.
_default_flags: set[Any] = {
    BaseCallbackHandler.__dict__[f]
    for f in IGNORE_FLAG.values()
    if f is not None and f in BaseCallbackHandler.__dict__
}
#: Added to a plan's mode when the handler's ``ignore_*`` flag must be read at each event.
_CHECK_FLAG = 8
_UNIMPLEMENTED_CHAT = {
    BaseCallbackHandler.on_chat_model_start,
    AsyncCallbackHandler.on_chat_model_start,
}


def _learn_langchain_bases(cls: type) -> None:
    """Treat langchain-core's own no-op base methods as 'not implemented' too."""
    for base in cls.__mro__:
        if base.__module__ == "langchain_core.callbacks.base":
            _collect_noops(base)
            for flag in set(IGNORE_FLAG.values()) - {None}:
                prop = base.__dict__.get(flag or "")
                if isinstance(prop, property):
                    _default_flags.add(prop)
            chat = base.__dict__.get("on_chat_model_start")
            if chat is not None:
                _UNIMPLEMENTED_CHAT.add(chat)


def _plan_for(cls: type) -> _Plan:
    plan = _plans.get(cls)
    if plan is not None:
        return plan
    if any(b.__module__.startswith("langchain_core.") for b in cls.__mro__):
        _learn_langchain_bases(cls)
    plan = {}
    for event in EVENTS:
        fn = getattr(cls, event, None)
        if fn is None or not callable(fn):
            plan[event] = _CHAT_FALLBACK if event == "on_chat_model_start" else _SKIP
        elif event == "on_chat_model_start" and fn in _UNIMPLEMENTED_CHAT:
            plan[event] = _CHAT_FALLBACK
        elif fn in _noop_functions:
            plan[event] = _SKIP
        else:
            plan[event] = _ASYNC if inspect.iscoroutinefunction(fn) else _SYNC
    # The fallback target must exist for the fallback to mean anything.
    if plan["on_chat_model_start"] == _CHAT_FALLBACK and plan["on_llm_start"] == _SKIP:
        plan["on_chat_model_start"] = _SKIP
    custom_lookup = _class_attr(cls, "__getattribute__") is not object.__getattribute__
    for event, mode in plan.items():
        flag = IGNORE_FLAG[event]
        if (
            mode
            and flag is not None
            and (custom_lookup or _class_attr(cls, flag) not in _default_flags)
        ):
            plan[event] = mode | _CHECK_FLAG
    _plans[cls] = plan
    return plan


def _class_attr(cls: type, name: str) -> Any:
    for base in cls.__mro__:
        if name in base.__dict__:
            return base.__dict__[name]
    return None


def is_classic_handler(obj: object) -> bool:
    """A classic handler is a ``BaseCallbackHandler`` (ours or langchain-core's) or any
    object with at least one callable ``on_*`` event method of the handler contract."""
    if isinstance(obj, BaseCallbackHandler):
        return True
    cls = type(obj)
    return any(callable(getattr(cls, e, None)) for e in EVENTS)


def _handler_failed(handler: object, event: str, exc: Exception) -> None:
    if getattr(handler, "raise_error", False):
        raise exc
    logger.warning("Error in %s.%s callback: %r", type(handler).__name__, event, exc)


def _chat_fallback_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    serialized, messages = args[0], args[1]
    return (serialized, [get_buffer_string(m) for m in messages])


# -- running coroutines from sync code -----------------------------------------------

_loop_lock = threading.Lock()
_handler_loop: asyncio.AbstractEventLoop | None = None


def _get_handler_loop() -> asyncio.AbstractEventLoop:
    global _handler_loop
    with _loop_lock:
        if _handler_loop is None or _handler_loop.is_closed():
            loop = asyncio.new_event_loop()
            t = threading.Thread(
                target=loop.run_forever, name="spanhook-async-handlers", daemon=True
            )
            t.start()
            _handler_loop = loop
        return _handler_loop


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


# -- dispatch ---------------------------------------------------------------------------


def dispatch(
    handlers: Sequence[object], event: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Deliver ``event`` to ``handlers`` from sync code, in order."""
    for handler in handlers:
        plan = _plans.get(type(handler))
        mode = (plan or _plan_for(type(handler)))[event]
        if not mode:
            continue
        if mode & _CHECK_FLAG:
            if getattr(handler, IGNORE_FLAG[event] or "", False):
                continue
            mode &= ~_CHECK_FLAG
        try:
            if mode == _CHAT_FALLBACK:
                _call_sync(handler, "on_llm_start", _chat_fallback_args(args), kwargs, "ignore_llm")
                continue
            try:
                result = getattr(handler, event)(*args, **kwargs)
                if result is not None and (mode == _ASYNC or inspect.iscoroutine(result)):
                    run_coroutine_blocking(result)
            except NotImplementedError as e:
                if event == "on_chat_model_start":
                    _call_sync(
                        handler, "on_llm_start", _chat_fallback_args(args), kwargs, "ignore_llm"
                    )
                else:
                    logger.warning(
                        "NotImplementedError in %s.%s callback: %r",
                        type(handler).__name__,
                        event,
                        e,
                    )
        except Exception as e:
            _handler_failed(handler, event, e)


def sync_targets(
    handlers: Sequence[object], event: str
) -> list[tuple[object, Callable[..., Any]]] | None:
    """The bound methods receiving ``event`` when every handler that wants it is a plain sync
    one, or ``None`` (then use :func:`dispatch`). For events a run repeats (tokens), resolved
    once per run: the per-event plan lookup, ``ignore_*`` flag and method lookup are done once."""
    flag = IGNORE_FLAG[event]
    out: list[tuple[object, Callable[..., Any]]] = []
    for handler in handlers:
        mode = _plan_for(type(handler))[event] & ~_CHECK_FLAG
        if mode == _SKIP:
            continue
        if flag is not None and getattr(handler, flag, False):
            continue
        if mode != _SYNC:
            return None
        out.append((handler, getattr(handler, event)))
    return out


def call_targets(
    targets: Sequence[tuple[object, Callable[..., Any]]], event: str, kwargs: dict[str, Any]
) -> None:
    """Deliver keyword-only ``event`` to targets from :func:`sync_targets`, in order, with the
    same isolation of failing handlers as :func:`dispatch`."""
    for handler, fn in targets:
        try:
            result = fn(**kwargs)
            if result is not None and inspect.iscoroutine(result):
                run_coroutine_blocking(result)
        except NotImplementedError as e:
            logger.warning(
                "NotImplementedError in %s.%s callback: %r", type(handler).__name__, event, e
            )
        except Exception as e:
            _handler_failed(handler, event, e)


def _call_sync(
    handler: object,
    event: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    flag: str | None,
) -> None:
    if flag is not None and getattr(handler, flag, False):
        return
    result = getattr(handler, event)(*args, **kwargs)
    if inspect.iscoroutine(result):
        run_coroutine_blocking(result)


async def adispatch(
    handlers: Sequence[object], event: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Deliver ``event`` from async code.

    ``run_inline`` handlers first, one after the other on the loop; then the others
    concurrently: coroutines awaited, sync handlers in a worker thread (with the run's
    contextvars) so that they never block the event loop. Returns when every handler is
    done, so a handler sees a run's events in the run's order.
    """
    flag = IGNORE_FLAG[event]
    pending: list[Any] = []
    for handler in handlers:
        mode = _plan_for(type(handler))[event] & ~_CHECK_FLAG
        if mode == _SKIP:
            continue
        if flag is not None and getattr(handler, flag, False):
            continue
        if getattr(handler, "run_inline", False) or mode == _ASYNC:
            if getattr(handler, "run_inline", False):
                await _acall_one(handler, event, mode, args, kwargs)
            else:
                pending.append(_acall_one(handler, event, mode, args, kwargs))
        else:
            pending.append(_in_thread(handler, event, mode, args, kwargs))
    if len(pending) == 1:
        await pending[0]
    elif pending:
        # Every handler gets the event even if one of them raises (``raise_error``): the
        # first error is re-raised once all deliveries are done, none is left half-sent.
        results = await asyncio.gather(*pending, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r


async def _acall_one(
    handler: object, event: str, mode: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    try:
        if mode == _CHAT_FALLBACK:
            event, args = "on_llm_start", _chat_fallback_args(args)
            if getattr(handler, "ignore_llm", False):
                return
        try:
            result = getattr(handler, event)(*args, **kwargs)
            if inspect.isawaitable(result):
                await result
        except NotImplementedError as e:
            if event == "on_chat_model_start":
                await _acall_one(handler, event, _CHAT_FALLBACK, args, kwargs)
            else:
                logger.warning(
                    "NotImplementedError in %s.%s callback: %r", type(handler).__name__, event, e
                )
    except Exception as e:
        _handler_failed(handler, event, e)


async def _in_thread(
    handler: object, event: str, mode: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call: Callable[[], None] = lambda: dispatch((handler,), event, args, kwargs)  # noqa: E731
    fut = loop.run_in_executor(None, ctx.run, call)
    try:
        await asyncio.shield(fut)
    except asyncio.CancelledError:
        # The thread cannot be interrupted: let this delivery finish before the cancellation
        # goes on, so the run's next event (its error) never overtakes it for this handler.
        if not fut.done():
            await asyncio.wait([fut])
        if not fut.cancelled():
            fut.exception()  # retrieved: the cancellation is what propagates
        raise
