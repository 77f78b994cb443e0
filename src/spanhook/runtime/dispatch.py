"""Dispatch: delivering one run event to the classic handlers in scope.

One policy, two loops. The policy is two functions: :func:`resolve` (the handler's plan, its
``ignore_*`` flag and the ``on_chat_model_start`` -> ``on_llm_start`` fallback decide which
method gets which arguments) and :func:`handler_failed` (a ``NotImplementedError`` falls back
or is logged, ``raise_error`` re-raises, anything else is logged with the handler's name and
the event, and the run goes on). :func:`dispatch` calls the methods from sync code;
:func:`adispatch` awaits coroutines and hands sync handlers to their serial worker thread
(:mod:`spanhook.runtime.workers`) so that they never block the event loop. The token path is
a precomputed list of calls (:func:`token_plan`), resolved once per run.

Every handler gets the event even when one of them raises (``raise_error``, or a
``BaseException`` such as ``KeyboardInterrupt``): the first such exception is re-raised once
all deliveries are done, so no handler gets an end or error event without its start.

Per handler class, which events it really implements is computed once (its plan), so a
handler that only overrides ``on_llm_new_token`` costs nothing on chain events.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from spanhook._state import STATE
from spanhook.callbacks.base import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.events import EVENTS, IGNORE_FLAG, IGNORE_FLAGS
from spanhook.runtime.loop import run_coroutine_blocking
from spanhook.runtime.workers import worker_for
from spanhook.schema.messages import get_buffer_string

logger = logging.getLogger("spanhook.callbacks")

_SKIP, _SYNC, _ASYNC, _CHAT_FALLBACK = 0, 1, 2, 3
#: Added to a plan's mode when the handler's ``ignore_*`` flag must be read at each event.
_CHECK_FLAG = 8
#: Added to a start event's mode when the handler also gets the run (``wants_run``).
_WANTS_RUN = 16
_EXTRA_BITS = _CHECK_FLAG | _WANTS_RUN
_Plan = dict[str, int]
#: One delivery: the method's name, its positional arguments, the bound method, and whether
#: it is a coroutine function.
Call = tuple[str, tuple[Any, ...], Callable[..., Any], bool]

_plans: dict[type, _Plan] = STATE.plans
#: The keyword argument carrying the run to run-tracking handlers' start events.
RUN_KWARG = "spanhook_run"
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
    BaseCallbackHandler.__dict__[f] for f in IGNORE_FLAGS if f in BaseCallbackHandler.__dict__
}
_UNIMPLEMENTED_CHAT = {
    BaseCallbackHandler.on_chat_model_start,
    AsyncCallbackHandler.on_chat_model_start,
}


def _learn_langchain_bases(cls: type) -> None:
    """Treat langchain-core's own no-op base methods as 'not implemented' too."""
    for base in cls.__mro__:
        if base.__module__ == "langchain_core.callbacks.base":
            _collect_noops(base)
            for flag in IGNORE_FLAGS:
                prop = base.__dict__.get(flag)
                if isinstance(prop, property):
                    _default_flags.add(prop)
            chat = base.__dict__.get("on_chat_model_start")
            if chat is not None:
                _UNIMPLEMENTED_CHAT.add(chat)


def _plan_for(cls: type) -> _Plan:
    """Which events ``cls`` implements, and how (computed once per class)."""
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
    if getattr(cls, "wants_run", False):
        for event, spec in EVENTS.items():
            if spec.role == "start" and plan[event]:
                plan[event] |= _WANTS_RUN
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


def _chat_fallback(handler: object, args: tuple[Any, ...]) -> Call | None:
    if getattr(handler, "ignore_llm", False):
        return None
    serialized, messages = args[0], args[1]
    prompts = [get_buffer_string(m) for m in messages]
    is_async = _plan_for(type(handler))["on_llm_start"] & ~_EXTRA_BITS == _ASYNC
    return "on_llm_start", (serialized, prompts), getattr(handler, "on_llm_start"), is_async  # noqa: B009


# -- the policy -------------------------------------------------------------------------


def resolve(handler: object, event: str, args: tuple[Any, ...]) -> Call | None:
    """What ``handler`` receives for ``event`` (``None``: nothing): its plan, its
    ``ignore_*`` flag, and the chat-model fallback."""
    mode = (_plans.get(type(handler)) or _plan_for(type(handler)))[event]
    if not mode:
        return None
    if mode & _CHECK_FLAG and getattr(handler, IGNORE_FLAG[event] or "", False):
        return None
    mode &= ~_EXTRA_BITS
    if mode == _CHAT_FALLBACK:
        return _chat_fallback(handler, args)
    return event, args, getattr(handler, event), mode == _ASYNC


def handler_failed(handler: object, call: Call, exc: Exception) -> Call | None:
    """A handler method raised ``exc``: the call to make instead (the chat fallback), or
    ``None`` once logged; re-raises for a ``raise_error`` handler."""
    event = call[0]
    if isinstance(exc, NotImplementedError):
        if event == "on_chat_model_start":
            return _chat_fallback(handler, call[1])
        logger.warning(
            "NotImplementedError in %s.%s callback: %r", type(handler).__name__, event, exc
        )
        return None
    if getattr(handler, "raise_error", False):
        raise exc
    logger.warning("Error in %s.%s callback: %r", type(handler).__name__, event, exc)
    return None


# -- the sync loop ----------------------------------------------------------------------


def _deliver(handler: object, call: Call, kwargs: dict[str, Any]) -> BaseException | None:
    """Make ``call`` (and its fallback, if it falls back); the exception to re-raise."""
    try:
        result = call[2](*call[1], **kwargs)
        if result is not None and inspect.iscoroutine(result):
            run_coroutine_blocking(result)
    except BaseException as e:
        return _after_failure(handler, call, kwargs, e)
    return None


def _after_failure(
    handler: object, call: Call, kwargs: dict[str, Any], exc: BaseException
) -> BaseException | None:
    """Apply the failure policy to ``exc``; the exception to re-raise once every handler got
    the event (``KeyboardInterrupt``, ``SystemExit``, ``raise_error``), if any."""
    if not isinstance(exc, Exception):
        return exc
    try:
        fallback = handler_failed(handler, call, exc)
    except BaseException as raised:
        return raised
    return None if fallback is None else _deliver(handler, fallback, kwargs)


def _with_run(handler: object, kwargs: dict[str, Any], run: object, event: str) -> dict[str, Any]:
    """A run-tracking handler (``wants_run``) also gets the run itself, at its start."""
    if run is None or not _plan_for(type(handler))[event] & _WANTS_RUN:
        return kwargs
    return {**kwargs, RUN_KWARG: run}


def dispatch(
    handlers: Sequence[object],
    event: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: object = None,
) -> None:
    """Deliver ``event`` to ``handlers`` from sync code, in order (``run``: the run a start
    event starts, for run-tracking handlers)."""
    first: BaseException | None = None
    for handler in handlers:
        mode = (_plans.get(type(handler)) or _plan_for(type(handler)))[event]
        if mode == _SYNC:  # resolve()'s plainest answer, inline: a sync method, no flag
            try:
                result = getattr(handler, event)(*args, **kwargs)
                if result is not None and inspect.iscoroutine(result):
                    run_coroutine_blocking(result)
                continue
            except BaseException as e:
                call: Call = (event, args, getattr(handler, event), False)
                error = _after_failure(handler, call, kwargs, e)
        elif mode:
            resolved = resolve(handler, event, args)
            if resolved is None:
                continue
            kw = kwargs
            if mode & _WANTS_RUN and run is not None:
                kw = {**kwargs, RUN_KWARG: run}
            error = _deliver(handler, resolved, kw)
        else:
            continue
        if error is not None and first is None:
            first = error
    if first is not None:
        raise first


def token_plan(handlers: Sequence[object]) -> list[tuple[object, Call]] | None:
    """The calls receiving ``on_llm_new_token`` when every handler that wants it is a plain
    sync one, or ``None`` (then use :func:`dispatch`). Resolved once per run: the plan
    lookup, ``ignore_*`` flag and method lookup are not repeated per token."""
    out: list[tuple[object, Call]] = []
    for handler in handlers:
        call = resolve(handler, "on_llm_new_token", ())
        if call is None:
            continue
        if call[3]:
            return None
        out.append((handler, call))
    return out


def deliver_planned(plan: Sequence[tuple[object, Call]], kwargs: dict[str, Any]) -> None:
    """Deliver a keyword-only event along a :func:`token_plan`, with the same policy."""
    first: BaseException | None = None
    for handler, call in plan:
        try:  # _deliver, inline: this runs for every token
            result = call[2](**kwargs)
            if result is not None and inspect.iscoroutine(result):
                run_coroutine_blocking(result)
        except BaseException as e:
            error = _after_failure(handler, call, kwargs, e)
            if error is not None and first is None:
                first = error
    if first is not None:
        raise first


# -- the async loop ---------------------------------------------------------------------


async def _adeliver(
    handler: object, call: Call | None, kwargs: dict[str, Any]
) -> BaseException | None:
    """The awaiting twin of :func:`_deliver` (cancellation propagates)."""
    while call is not None:
        try:
            result = call[2](*call[1], **kwargs)
            if inspect.isawaitable(result):
                await result
            return None
        except asyncio.CancelledError:
            raise
        except Exception as e:
            try:
                call = handler_failed(handler, call, e)
            except BaseException as raised:
                return raised
        except BaseException as e:
            return e
    return None


async def adispatch(
    handlers: Sequence[object],
    event: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: object = None,
) -> None:
    """Deliver ``event`` from async code.

    ``run_inline`` handlers first, one after the other on the loop; then the others
    concurrently: coroutines awaited, sync handlers on their own serial worker thread (with
    the run's contextvars) so that they never block the event loop. Returns when every
    handler is done, so a handler sees a run's events in the run's order.
    """
    pending: list[Any] = []
    threaded: list[tuple[object, Call, dict[str, Any]]] = []
    first: BaseException | None = None
    for handler in handlers:
        call = resolve(handler, event, args)
        if call is None:
            continue
        kw = _with_run(handler, kwargs, run, event)
        if getattr(handler, "run_inline", False):
            error = await _adeliver(handler, call, kw)
            if error is not None and first is None:
                first = error
        elif call[3]:
            pending.append(_adeliver(handler, call, kw))
        else:
            threaded.append((handler, call, kw))
    if threaded:
        pending.append(_in_workers(threaded))
    if len(pending) == 1:
        error = await pending[0]
        if error is not None and first is None:
            first = error
    elif pending:
        for r in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(r, BaseException) and first is None:
                first = r
    if first is not None:
        raise first


async def _in_workers(calls: list[tuple[object, Call, dict[str, Any]]]) -> BaseException | None:
    """Sync handlers, one after the other in scope order, each on its own worker thread."""
    first: BaseException | None = None
    cancelled: asyncio.CancelledError | None = None
    for handler, call, kwargs in calls:
        try:
            error = await _in_worker(handler, call, kwargs)
        except asyncio.CancelledError as e:  # the others still get the event, then it goes on
            cancelled, error = e, None
        if error is not None and first is None:
            first = error
    if cancelled is not None:
        raise cancelled
    return first


async def _in_worker(handler: object, call: Call, kwargs: dict[str, Any]) -> BaseException | None:
    fut = asyncio.wrap_future(worker_for(handler).submit(lambda: _deliver(handler, call, kwargs)))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        # The thread cannot be interrupted: let this delivery finish before the cancellation
        # goes on, so the run's next event (its error) never overtakes it for this handler.
        if not fut.done():
            await asyncio.wait([fut])
        if not fut.cancelled():
            fut.exception()  # retrieved: the cancellation is what propagates
        raise
