"""The one module through which the LangChain integration reaches spanhook's run runtime.

A langchain-core run becomes a spanhook :class:`~spanhook.tracing.run.Run` built here with an
explicit parent (the parent langchain-core run), langchain-core's ``run_id``, no classic
handlers of its own (langchain-core's callback manager delivers those) and the OTel span
processors in its scope. Everything else in ``spanhook.langchain`` uses only the functions
below, never the runtime's internals.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from spanhook.callbacks.bridge import is_classic_handler
from spanhook.tracing import attributes as attr
from spanhook.tracing import run as _rt
from spanhook.tracing.console import SpanTreePrinter
from spanhook.tracing.consumers import classify, merge
from spanhook.tracing.provider import get_tracer, recording_tracer
from spanhook.tracing.run import Run
from spanhook.tracing.settings import content_capture_enabled, get_settings

__all__ = [
    "Run",
    "attach",
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

_RUN_KEY = _rt._RUN_KEY
_SPAN_KEY = _rt._SPAN_KEY
_Context = otel_context.Context
_get_current = otel_context.get_current
attach = otel_context.attach
detach = otel_context.detach
#: Longest span status description (the exception's type and message, cut).
MAX_STATUS_DESCRIPTION = 200


def scoped_handlers() -> tuple[Any, ...]:
    """Handlers added to every run of this context (``get_usage_callback()`` and friends)."""
    return _rt.SCOPED_HANDLERS.get()


def open_run(
    kind: str,
    name: str,
    run_id: uuid.UUID,
    parent: Run | None,
    *,
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
        outer = ctx.get(_RUN_KEY)
        parent = outer if isinstance(outer, Run) else None
    else:
        ctx = parent._child_ctx
    if parent is not None:
        processors = parent.child_processors
        inherited_verbose = parent.verbose
    else:
        processors, inherited_verbose = (), False
    if verbose and not inherited_verbose:
        inherited_processors = (*inherited_processors, SpanTreePrinter())
    if inherited_processors:
        processors = merge(processors, inherited_processors)
    child_processors = processors
    if own_processors:
        processors = merge(processors, own_processors)
    span_attrs = attributes
    span_attrs[attr.RUN_KIND] = kind
    span_attrs[attr.RUN_ID] = str(run_id)
    if tags:
        span_attrs[attr.TAGS] = tags
    if metadata:
        settings = get_settings()
        span_attrs.update(
            attr.metadata_attributes(
                metadata,
                settings.max_content_length,
                settings.redact,
                settings.max_metadata_attributes,
            )
        )
    tracer = recording_tracer()
    if tracer is None and not processors:
        span: trace.Span = _rt._light_span(ctx)
    else:
        span = (tracer or get_tracer()).start_span(
            span_name, context=ctx, kind=span_kind, attributes=span_attrs
        )
    run = Run()
    run.kind = kind
    run.name = name
    run.run_id = run_id
    run.parent = parent
    run.parent_run_id = parent.run_id if parent is not None else None
    run.span = span
    run.handlers = ()
    run.processors = processors
    run.tags = tags or []
    run.metadata = dict(metadata) if metadata else {}
    run.child_handlers = parent.child_handlers if parent is not None else ()
    run.child_processors = child_processors
    run.child_tags = []
    run.child_metadata = {}
    run.verbose = verbose or inherited_verbose
    run.start_args = ()
    run.start_kwargs = {}
    run.end_kwargs = {}
    run.error_kwargs = {}
    run._end_args = (None,)
    run._entered = True
    run._finished = False
    run._token = None
    run._chunks = 0
    run._token_targets = _rt._UNRESOLVED
    run._first_chunk_ns = 0
    run.start_ns = time.monotonic_ns()
    run._child_ctx = _Context({**ctx, _SPAN_KEY: span, _RUN_KEY: run})
    if processors:
        run._processors_start()
    return run


def run_context(run: Run) -> otel_context.Context:
    """The OTel context in which ``run``'s body executes: its span and the run current."""
    return run._child_ctx


def note_chunk(run: Run) -> None:
    """A streamed chunk: counted on the span; the first one sets the time to first chunk."""
    run.on_llm_new_token("")


def end_run(run: Run, attributes: Mapping[str, Any] | None = None) -> None:
    """End ``run``'s span successfully (once)."""
    if run._finished:
        return
    if attributes:
        run.set_attributes(attributes)
    run._close()


def fail_run(run: Run, error: BaseException) -> None:
    """End ``run``'s span with ``error``: ERROR status (a description of at most 200
    characters), one exception event, ``error.type``."""
    if run._finished:
        return
    span = run.span
    if span.is_recording():
        span.record_exception(error, escaped=True)
        text = f"{type(error).__name__}: {error}"
        if len(text) > MAX_STATUS_DESCRIPTION:
            text = text[: MAX_STATUS_DESCRIPTION - 3] + "..."
        span.set_status(Status(StatusCode.ERROR, text))
        span.set_attribute(attr.ERROR_TYPE, type(error).__qualname__)
    run._close()


def streamed(run: Run) -> bool:
    """Whether ``run`` received streamed chunks."""
    return run._chunks > 0


def current_context() -> otel_context.Context:
    return _get_current()
