"""Console spans: the span tree of finished runs, printed readably (not JSON dumps).

``SpanTreePrinter`` is the scoped processor ``verbose=True`` adds: it sees exactly the spans
of the verbose run and its nested runs and prints their tree when the verbose run ends.
``SpanTreeExporter`` is the exporter behind ``OTEL_TRACES_EXPORTER=console``: it prints each
trace's tree when the trace's local root span arrives.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spanhook._color import color_enabled
from spanhook.tracing.render import render, tree_from_spans


def _print_tree(stream: TextIO | None, spans: list[ReadableSpan], title: str) -> None:
    """Print the tree of ``spans`` under ``title`` to ``stream`` (default: stdout)."""
    stream = stream or sys.stdout
    print(render(tree_from_spans(spans), color_enabled(stream), title), file=stream, flush=True)


class SpanTreePrinter(SpanProcessor):
    """Collects the spans it is given and prints their tree when the outermost one ends
    (``shutdown`` and ``force_flush``: the base class's, which do nothing)."""

    reads_start_attributes = False  # (runtime.spans.start_span)

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._started: set[int] = set()
        self._finished: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self._started.add(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self._finished.append(span)
            parent = span.parent.span_id if span.parent is not None else None
            if parent in self._started:
                return
            spans, self._finished = self._finished, []
            self._started.clear()
        _print_tree(self._stream, spans, f"\nSpan tree (trace {span.context.trace_id:032x}):")


class SpanTreeExporter(SpanExporter):
    """Prints each trace as a tree once its local root span has been exported."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: dict[int, list[ReadableSpan]] = {}

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ready: list[tuple[int, list[ReadableSpan]]] = []
        with self._lock:
            for s in spans:
                tid = s.context.trace_id
                self._pending.setdefault(tid, []).append(s)
                if s.parent is None or s.parent.is_remote:
                    ready.append((tid, self._pending.pop(tid)))
        for tid, group in ready:
            _print_tree(self._stream, group, f"\nTrace {tid:032x}:")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for tid, group in pending.items():
            _print_tree(self._stream, group, f"\nTrace {tid:032x}:")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
