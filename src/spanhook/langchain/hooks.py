"""Every hook spanhook installs into langchain-core and LangGraph, and their exact removal.

Each hook replaces one attribute of a class or module; :func:`install` records what was
there (or that nothing was) and :func:`uninstall` puts exactly that back.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from typing import Any

from spanhook.langchain import _runtime as rt
from spanhook.langchain import bodies, graph_events
from spanhook.langchain.consumers import ConsumerHandler, is_otel_consumer
from spanhook.langchain.tracer import TRACER

_MISSING = object()
_lock = threading.Lock()
#: (owner, attribute, what was in owner.__dict__ or _MISSING)
_installed: list[tuple[Any, str, Any]] = []

_HANDLER, _CONSUMER, _INVALID = 0, 1, 2
_kinds: dict[type, int] = {}


def _kind(handler: object) -> int:
    cls = type(handler)
    kind = _kinds.get(cls)
    if kind is None:
        if is_otel_consumer(handler):
            kind = _CONSUMER
        elif rt.is_classic_handler(handler):
            kind = _HANDLER
        else:
            kind = _INVALID
        _kinds[cls] = kind
    return kind


def prepare_manager(manager: Any) -> None:
    """Put spanhook into a callback manager langchain-core just configured: OTel consumers
    become :class:`ConsumerHandler` entries (scoped by langchain-core's own rules), handlers
    scoped with spanhook (``get_usage_callback()``) join as inheritable ones, and the tracer
    comes last, after the consumers that hand it their processors. (A nested run's manager,
    already prepared, is passed over by the ``_configure`` hook.)"""
    handlers: list[Any] = manager.handlers
    inheritable: list[Any] = manager.inheritable_handlers
    scoped = rt.scoped_handlers()
    if not scoped and not handlers and not inheritable:  # a root run with no callbacks
        handlers.append(TRACER)
        inheritable.append(TRACER)
        return
    for i, h in enumerate(handlers):
        kind = _kind(h)
        if kind == _INVALID:
            raise TypeError(
                f"callbacks entry {h!r} ({type(h).__name__}) is neither a callback handler "
                "(e.g. a BaseCallbackHandler) nor an OpenTelemetry SpanProcessor or SpanExporter"
            )
        if kind == _CONSUMER:
            inherited = any(x is h for x in inheritable)
            adapter = ConsumerHandler(h, inherited)
            handlers[i] = adapter
            for j, x in enumerate(inheritable):
                if x is h:
                    inheritable[j] = adapter
    for h in scoped:
        if not any(x is h for x in handlers):
            manager.add_handler(h, True)
    if not handlers or handlers[-1] is not TRACER:
        if TRACER in handlers:
            handlers.remove(TRACER)
        handlers.append(TRACER)
    if not inheritable or inheritable[-1] is not TRACER:
        if TRACER in inheritable:
            inheritable.remove(TRACER)
        inheritable.append(TRACER)


def _wrap_configure(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _configure(*args: Any, **kwargs: Any) -> Any:
        manager = original(*args, **kwargs)
        handlers = manager.handlers
        if not (  # a nested run's manager, already prepared: no call (bench_langchain)
            len(handlers) == 1
            and handlers[0] is TRACER
            and len(inheritable := manager.inheritable_handlers) == 1
            and inheritable[0] is TRACER
            and not rt.scoped_handlers()
        ):
            prepare_manager(manager)
        return manager

    return _configure


def _ours(handler: object) -> bool:
    return handler is TRACER or type(handler) is ConsumerHandler


def _wrap_async_llm_start(original: Callable[..., Any]) -> Callable[..., Any]:
    """langchain-core's async ``on_llm_start`` skips every handler that is not ``run_inline``
    as soon as one is: the tracer (inline) must not make it skip the application's ones. Those
    get the event after the inline ones, as they would without spanhook."""

    @functools.wraps(original)
    async def on_llm_start(
        self: Any, serialized: Any, prompts: list[str], run_id: Any = None, **kwargs: Any
    ) -> Any:
        managers = await original(self, serialized, prompts, run_id, **kwargs)
        handlers = self.handlers
        if any(h.run_inline and not _ours(h) for h in handlers):
            return managers  # langchain-core's own behaviour, untouched
        skipped = [h for h in handlers if not h.run_inline]
        if skipped:
            from langchain_core.callbacks.manager import ahandle_event

            for manager, prompt in zip(managers, prompts, strict=False):
                await ahandle_event(
                    skipped,
                    "on_llm_start",
                    "ignore_llm",
                    serialized,
                    [prompt],
                    run_id=manager.run_id,
                    parent_run_id=self.parent_run_id,
                    tags=self.tags,
                    metadata=self.metadata,
                    **kwargs,
                )
        return managers

    return on_llm_start


class _TasksInContext:
    """``asyncio`` as LangGraph's node runner sees it where ``create_task`` takes no
    ``context`` (Python 3.10): a task given a context is created inside it, which is what
    ``context=`` does. LangGraph then runs a node's body in the context it prepared for it
    (the node's config, and the node's run current) instead of the caller's."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_task(self, coro: Any, *, name: str | None = None, context: Any = None) -> Any:
        if context is None:
            return self._real.create_task(coro, name=name)
        return context.run(self._real.create_task, coro, name=name)


def _context_task_targets() -> list[tuple[str, str, str, Callable[[Any], Any]]]:
    """LangGraph awaits an async node's body in the caller's context where asyncio cannot
    create a task in a given one (before Python 3.11): the node's run is not current there,
    so spans the node makes lose their parent. The hooks give it such tasks."""
    module = "langgraph._internal._runnable"
    try:
        if importlib.import_module(module).ASYNCIO_ACCEPTS_CONTEXT:
            return []
    except (ImportError, AttributeError):
        return []
    return [
        (module, "", "asyncio", _TasksInContext),
        (module, "", "ASYNCIO_ACCEPTS_CONTEXT", lambda _accepts: True),
    ]


def _targets() -> list[tuple[str, str, str, Callable[[Any], Any]]]:
    """(module, owner in module or "", attribute, wrapper factory)."""
    return [
        *_context_task_targets(),
        ("langchain_core.callbacks.manager", "", "_configure", _wrap_configure),
        (
            "langchain_core.callbacks.manager",
            "AsyncCallbackManager",
            "on_llm_start",
            _wrap_async_llm_start,
        ),
        (
            "langchain_core.runnables.config",
            "",
            "_set_config_context",
            bodies.wrap_set_config_context,
        ),
        (
            "langgraph._internal._runnable",
            "",
            "_set_config_context",
            bodies.wrap_set_config_context,
        ),
        (
            "langchain_core.language_models.chat_models",
            "BaseChatModel",
            "_generate_with_cache",
            lambda f: bodies.wrap_generate(f, 2, many=False),
        ),
        (
            "langchain_core.language_models.chat_models",
            "BaseChatModel",
            "_agenerate_with_cache",
            lambda f: bodies.wrap_agenerate(f, 2, many=False),
        ),
        (
            "langchain_core.language_models.llms",
            "BaseLLM",
            "_generate_helper",
            lambda f: bodies.wrap_generate(f, 2, many=True),
        ),
        (
            "langchain_core.language_models.llms",
            "BaseLLM",
            "_agenerate_helper",
            lambda f: bodies.wrap_agenerate(f, 2, many=True),
        ),
        (
            "langchain_core.language_models.chat_models",
            "BaseChatModel",
            "stream",
            bodies.wrap_stream,
        ),
        (
            "langchain_core.language_models.chat_models",
            "BaseChatModel",
            "astream",
            bodies.wrap_astream,
        ),
        ("langchain_core.language_models.llms", "BaseLLM", "stream", bodies.wrap_stream),
        ("langchain_core.language_models.llms", "BaseLLM", "astream", bodies.wrap_astream),
        (
            "langchain_core.runnables.base",
            "Runnable",
            "_transform_stream_with_config",
            lambda f: bodies.wrap_stream(f, attach=False),
        ),
        # LangGraph 1.2+: graph pauses and resumes (graph_events.py)
        (
            "langgraph.pregel.main",
            "",
            "get_sync_graph_callback_manager_for_config",
            graph_events.wrap_manager_factory,
        ),
        (
            "langgraph.pregel.main",
            "",
            "get_async_graph_callback_manager_for_config",
            graph_events.wrap_manager_factory,
        ),
    ]


def install() -> None:
    """Install every hook (once)."""
    with _lock:
        if _installed:
            return
        for module_name, owner_name, attribute, factory in _targets():
            try:
                module = importlib.import_module(module_name)
            except ImportError:  # LangGraph is optional
                continue
            owner = getattr(module, owner_name) if owner_name else module
            if module_name.startswith("langgraph") and not hasattr(owner, attribute):
                continue  # a LangGraph release without this API
            previous = owner.__dict__.get(attribute, _MISSING)
            original = getattr(owner, attribute)
            setattr(owner, attribute, factory(original))
            _installed.append((owner, attribute, previous))


def uninstall() -> None:
    """Remove every hook, restoring exactly what was there."""
    with _lock:
        while _installed:
            owner, attribute, previous = _installed.pop()
            if previous is _MISSING:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, previous)


def installed() -> bool:
    return bool(_installed)
