"""Checks shared by the LangChain integration tests: span trees against langchain-core's
own run tree, and the spans current inside the app's bodies."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from opentelemetry.sdk.trace import ReadableSpan

from lc_app import SEEN


def run_spans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    """The spans of runs (spanhook's own spans carry ``spanhook.run_id``)."""
    return [s for s in spans if s.attributes and "spanhook.run_id" in s.attributes]


def span_edges(spans: Sequence[ReadableSpan]) -> set[tuple[str, str | None]]:
    """(run id, parent run id) of every run span, the parent read from the parent span."""
    by_span = {s.context.span_id: s for s in spans}
    edges = set()
    for s in run_spans(spans):
        parent = by_span.get(s.parent.span_id) if s.parent is not None else None
        parent_id = parent.attributes.get("spanhook.run_id") if parent is not None else None
        edges.add((str(s.attributes["spanhook.run_id"]), parent_id))  # type: ignore[index]
    return edges


def collector_edges(collector: RunCollectorCallbackHandler) -> set[tuple[str, str | None]]:
    """(run id, parent run id) of every run langchain-core's own tracer recorded."""
    edges: set[tuple[str, str | None]] = set()

    def walk(run: Any, parent: uuid.UUID | None) -> None:
        edges.add((str(run.id), str(parent) if parent else None))
        for child in run.child_runs:
            walk(child, run.id)

    for root in collector.traced_runs:
        walk(root, None)
    return edges


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def parent_of(spans: Sequence[ReadableSpan], span: ReadableSpan) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


def seen_names(where: str) -> list[str]:
    """Names of the spans current in the app's bodies of kind ``where``."""
    return [getattr(s, "name", "<none>") for w, s in SEEN if w == where]
