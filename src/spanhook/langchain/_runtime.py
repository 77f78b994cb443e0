"""The one module through which the LangChain integration reaches spanhook's run runtime.

A langchain-core run becomes a spanhook :class:`~spanhook.runtime.run.Run` built here with an
explicit parent (the parent langchain-core run), langchain-core's ``run_id``, no classic
handlers of its own (langchain-core's callback manager delivers those) and the OTel span
processors in its scope. Everything else in ``spanhook.langchain`` uses only the functions
below, never the runtime's internals.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind

from spanhook.runtime import spans, start
from spanhook.runtime.dispatch import is_classic_handler
from spanhook.runtime.run import _ACTIVE, _DONE, Run
from spanhook.runtime.scope import ROOT, SCOPED_HANDLERS, Scope, _new_scope
from spanhook.runtime.spans import RUN_KEY, SUPPRESS_PROVIDER_SPANS_KEY
from spanhook.tracing.console import SpanTreePrinter
from spanhook.tracing.consumers import classify, merge
from spanhook.tracing.settings import content_capture_enabled

__all__ = [
    "Run",
    "attach",
    "attach_run",
    "classify",
    "content_capture_enabled",
    "current_context",
    "detach",
    "end_run",
    "fail_run",
    "is_classic_handler",
    "note_chunk",
    "open_run",
    "run_context",
    "scoped_handlers",
    "streamed",
]

_Context = otel_context.Context
_start_span = spans.start_span
_new_run = start.new_run
_run_span = start.run_span
_get_current = spans.get_current  # (bench_langchain app chain)
attach = spans.attach
detach = otel_context.detach


logger = logging.getLogger("spanhook.langchain")


#: Handlers added to every run of this context (``get_usage_callback()`` and friends): the
#: context variable's own getter, no Python call (every callback manager asks).
scoped_handlers: Callable[[], tuple[Any, ...]] = SCOPED_HANDLERS.get


def open_run(
    kind: str,
    name: str,
    run_id: uuid.UUID,
    parent: Run | None,
    span_name: str,
    span_kind: SpanKind,
    attributes: dict[str, Any],
    tags: list[str] | None,
    metadata: Mapping[str, Any] | None,
    own_processors: tuple[SpanProcessor, ...] = (),
    inherited_processors: tuple[SpanProcessor, ...] = (),
    verbose: bool = False,
) -> Run:
    """Start the span of a langchain-core run (not made current anywhere).

    Its OTel parent is ``parent``'s span; without a known parent, the context current where
    the run starts (an application span or a native spanhook run). ``own_processors`` see
    this run's span only; ``inherited_processors`` also every span nested in it. ``verbose``
    prints the span tree of the run (with everything nested in it) when it ends."""
    if parent is None:
        ctx = _get_current()
        outer = ctx.get(RUN_KEY)
        parent = outer if isinstance(outer, Run) else None
    else:
        ctx = parent._ctx
    base = parent.inherited if parent is not None else ROOT
    run_tags = list(tags) if tags else []
    run_metadata = dict(metadata) if metadata else {}
    if verbose or inherited_processors or own_processors:
        child_processors = base.processors
        if verbose and not base.verbose:
            inherited_processors = (*inherited_processors, SpanTreePrinter())
        if inherited_processors:
            child_processors = merge(child_processors, inherited_processors)
        is_verbose = verbose or base.verbose
        inherited = _new_scope(Scope, (base.handlers, child_processors, [], {}, is_verbose))
        processors = merge(child_processors, own_processors)
    else:  # nested runs inherit the parent's inherited scope, shared (bench_langchain)
        inherited, processors, is_verbose = base, base.processors, base.verbose
        if base.tags or base.metadata:
            inherited = _new_scope(Scope, (base.handlers, processors, [], {}, is_verbose))
    # langchain-core's callback manager delivers the classic handlers: the run has none.
    scope = _new_scope(Scope, ((), processors, run_tags, run_metadata, is_verbose))
    span = _run_span(
        kind, run_id, span_name, ctx, span_kind, run_tags, run_metadata, attributes, scope
    )
    run = _new_run(kind, name, run_id, parent, span, scope, inherited, ctx)
    run._state = _ACTIVE
    for p in processors:  # (empty for most runs)
        try:
            p.on_start(span, parent_context=run._ctx)
        except Exception:
            logger.exception("span processor %r failed in on_start", p)
    return run


def run_context(run: Run) -> otel_context.Context:
    """The OTel context in which ``run``'s body executes: its span and the run current."""
    return run._ctx


def attach_run(run: Run) -> Token[otel_context.Context]:
    """Make ``run``'s context current (``attach(run_context(run))`` in one call: every
    runnable body does it, bench_langchain)."""
    return attach(run._ctx)


def suppress_provider_spans(run: Run) -> None:
    """Inside ``run`` (a model run), LLM provider instrumentations make no span of their own."""
    run._ctx = otel_context.set_value(SUPPRESS_PROVIDER_SPANS_KEY, True, run._ctx)


def note_chunk(run: Run) -> None:
    """A streamed chunk: counted on the span; the first one sets the time to first chunk."""
    run.count_token("")


def end_run(run: Run, attributes: Mapping[str, Any] | None = None) -> None:
    """End ``run``'s span successfully (once)."""
    if run._state == _DONE:
        return
    if attributes:
        run.set_attributes(attributes)
    run._close()


def fail_run(run: Run, error: BaseException) -> None:
    """End ``run``'s span with ``error``: ERROR status (a description of at most 200
    characters), one exception event, ``error.type``."""
    if run._state == _DONE:
        return
    run._error_status(error)
    run._close()


def streamed(run: Run) -> bool:
    """Whether ``run`` received streamed chunks."""
    return run.stream is not None and run.stream.count > 0


def current_context() -> otel_context.Context:
    return _get_current()
