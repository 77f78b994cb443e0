"""Spans other code creates inside a run reach the run's scoped consumers.

An exporter or processor passed with a request (``callbacks=[exporter]``) receives the
spans of that request's runs from the runs themselves. Spans that user code and
instrumentations (HTTP clients, databases) start while a run's body executes go through the
application's ``TracerProvider`` instead; :class:`ForeignSpanRouter`, added once to each SDK
provider spanhook uses, hands each of them to the scoped processors of the run that was
current when it started (what that run's nested runs inherit), so the request's exporter
gets its whole subtree.
"""

from __future__ import annotations

import logging
import threading
import weakref

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

logger = logging.getLogger("spanhook.tracing")

#: spanhook's own spans are handed to scoped processors by their runs.
OWN_SCOPE = "spanhook"
#: Foreign spans started in a scoped run and not ended yet, at most (beyond that the
#: oldest routes are forgotten: a span never ended must not hold memory forever).
MAX_OPEN = 100_000


class ForeignSpanRouter(SpanProcessor):
    """Routes spans started inside a spanhook run to that run's scoped processors (it holds
    no spans: ``shutdown`` and ``force_flush`` are the base class's, which do nothing)."""

    reads_start_attributes = False  # (runtime.spans.start_span)

    def __init__(self, run_key: str) -> None:
        self._run_key = run_key
        self._lock = threading.Lock()
        self._routes: dict[tuple[int, int], tuple[SpanProcessor, ...]] = {}

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        scope = span.instrumentation_scope
        if scope is not None and scope.name == OWN_SCOPE:
            return
        ctx = parent_context if parent_context is not None else otel_context.get_current()
        run = ctx.get(self._run_key)
        if run is None:
            return
        inherited = getattr(run, "inherited", None)  # what the run's nested runs inherit
        processors: tuple[SpanProcessor, ...] = inherited.processors if inherited else ()
        if not processors:
            return
        sc = span.get_span_context()
        with self._lock:
            if len(self._routes) >= MAX_OPEN:
                self._routes.pop(next(iter(self._routes)))
            self._routes[(sc.trace_id, sc.span_id)] = processors
        for p in processors:
            try:
                p.on_start(span, parent_context=ctx)
            except Exception:
                logger.exception("span processor %r failed in on_start", p)

    def on_end(self, span: ReadableSpan) -> None:
        if not self._routes:
            return
        sc = span.get_span_context()
        if sc is None:
            return
        with self._lock:
            processors = self._routes.pop((sc.trace_id, sc.span_id), None)
        if processors is None:
            return
        for p in processors:
            try:
                p.on_end(span)
            except Exception:
                logger.exception("span processor %r failed in on_end", p)


_lock = threading.Lock()
_routed: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


def ensure_router(provider: object, run_key: str) -> None:
    """Add a :class:`ForeignSpanRouter` to ``provider`` (an SDK ``TracerProvider``) once."""
    if not isinstance(provider, TracerProvider):
        return
    with _lock:
        if provider in _routed:
            return
        _routed.add(provider)
    provider.add_span_processor(ForeignSpanRouter(run_key))
