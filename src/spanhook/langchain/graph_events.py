"""LangGraph's graph lifecycle on the graph run's span (LangGraph 1.2 and later).

A graph that pauses (``interrupt()``, or an ``interrupt_before`` / ``interrupt_after``
breakpoint) records ``spanhook.graph.paused`` on its span: the loop's status, the checkpoint
it paused at, the interrupt ids. The graph run that resumes from that checkpoint records
``spanhook.graph.resumed`` and links to the paused run's span, so a conversation that waited
for a human is one chain of traces a viewer can follow.

LangGraph delivers these events only to ``GraphCallbackHandler`` subclasses in the graph
callback manager it builds from the request's config; :func:`wrap_manager_factory` puts
spanhook's handler there (the hook on ``langgraph.pregel.main``).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import SpanContext

from spanhook._state import STATE
from spanhook.langchain.tracer import TRACER

#: Paused graph runs kept for a resume to link to (the oldest are forgotten first).
PAUSED_LIMIT = 10_000


class PausedRuns:
    """The span of each paused graph run, by (checkpoint namespace, checkpoint id), kept in
    ``spans`` (the process's: ``_state.STATE.paused_graphs``, cleared by
    ``spanhook.testing.reset()``)."""

    def __init__(
        self,
        spans: OrderedDict[tuple[tuple[str, ...], str], SpanContext] | None = None,
        limit: int = PAUSED_LIMIT,
    ) -> None:
        self.limit = limit
        self._spans = OrderedDict() if spans is None else spans
        self._lock = threading.Lock()

    def remember(self, key: tuple[tuple[str, ...], str], span: SpanContext) -> None:
        with self._lock:
            self._spans[key] = span
            self._spans.move_to_end(key)
            while len(self._spans) > self.limit:
                self._spans.popitem(last=False)

    def find(self, key: tuple[tuple[str, ...], str]) -> SpanContext | None:
        """The paused run's span; kept, since a checkpoint may be resumed more than once."""
        with self._lock:
            return self._spans.get(key)

    def __len__(self) -> int:
        return len(self._spans)


PAUSED = PausedRuns(STATE.paused_graphs)


def _attributes(event: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "spanhook.graph.status": str(event.status),
        "spanhook.graph.checkpoint_id": str(event.checkpoint_id),
    }
    if event.checkpoint_ns:
        attrs["spanhook.graph.checkpoint_ns"] = [str(n) for n in event.checkpoint_ns]
    return attrs


def on_interrupt(event: Any) -> None:
    run = TRACER.runs.get(event.run_id) if event.run_id is not None else None
    if run is None or not run.span.is_recording():
        return
    attrs = _attributes(event)
    ids = [str(i.id) for i in event.interrupts if getattr(i, "id", None)]
    if ids:
        attrs["spanhook.graph.interrupt.ids"] = ids
    run.span.add_event("spanhook.graph.paused", attrs)
    PAUSED.remember(
        (tuple(event.checkpoint_ns), str(event.checkpoint_id)), run.span.get_span_context()
    )


def on_resume(event: Any) -> None:
    run = TRACER.runs.get(event.run_id) if event.run_id is not None else None
    if run is None or not run.span.is_recording():
        return
    paused = PAUSED.find((tuple(event.checkpoint_ns), str(event.checkpoint_id)))
    if paused is not None:
        run.span.add_link(paused, {"spanhook.link": "resumes"})
    run.span.add_event("spanhook.graph.resumed", _attributes(event))


@functools.cache
def handler() -> Any:
    """spanhook's ``GraphCallbackHandler``, built once LangGraph's lifecycle API is there."""
    from langgraph.callbacks import GraphCallbackHandler

    class GraphEvents(GraphCallbackHandler):
        run_inline = True

        def on_interrupt(self, event: Any) -> None:
            on_interrupt(event)

        def on_resume(self, event: Any) -> None:
            on_resume(event)

    return GraphEvents()


def wrap_manager_factory(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``get_(a)sync_graph_callback_manager_for_config``: the manager it returns also
    delivers to spanhook's handler (and LangGraph then collects the lifecycle events)."""
    events = handler()

    @functools.wraps(original)
    def factory(*args: Any, **kwargs: Any) -> Any:
        manager = original(*args, **kwargs)
        if events not in manager.handlers:
            manager.add_handler(events, inherit=False)
        return manager

    return factory
