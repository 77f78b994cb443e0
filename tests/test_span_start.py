"""A run's span starts with its attributes directly in its attribute map when nothing reads
them before the start (``runtime.spans.start_span``), and the SDK's way otherwise: samplers
and processors that read attributes see them, span limits apply, values come out the same."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

from spanhook.chains import Chain
from spanhook.runtime import spans
from spanhook.testing import reset


class Echo(Chain):
    input_keys = ["x"]
    output_keys = ["y"]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"y": inputs["x"]}


class Sized(Echo):
    def _span_attributes(self) -> dict[str, Any] | None:
        return {"app.count": 3, "app.ratio": 0.5, "app.flag": True, "app.items": ["a", "b"]}


class AttributeSampler(Sampler):
    """Samples a span only when its start attributes say it is a spanhook run."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Any = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        self.seen.append(dict(attributes or {}))
        ok = bool(attributes) and "spanhook.run.kind" in attributes
        return SamplingResult(Decision.RECORD_AND_SAMPLE if ok else Decision.DROP, attributes)

    def get_description(self) -> str:
        return "AttributeSampler"


class StartReader(SpanProcessor):
    """Keeps each span's attributes as ``on_start`` sees them."""

    def __init__(self) -> None:
        self.at_start: list[dict[str, Any]] = []

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self.at_start.append(dict(span.attributes or {}))


def provider_with(exporter: InMemorySpanExporter, **kwargs: Any) -> TracerProvider:
    tp = TracerProvider(**kwargs)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tp)
    return tp


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


@pytest.mark.parametrize("sampler", [None, ParentBased(TraceIdRatioBased(1.0)), ALWAYS_ON], ids=str)
def test_sdk_samplers_and_processors_take_the_direct_path_with_the_same_attributes(
    sampler: Any,
) -> None:
    exporter = InMemorySpanExporter()
    tp = provider_with(exporter, **({"sampler": sampler} if sampler is not None else {}))
    tp.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    Sized().invoke({"x": 1}, tags=["t1"], metadata={"user": "u1"})
    assert spans._gate[3] >= 0, "an SDK sampler and SDK processors: the direct path"
    attrs = dict(only_span(exporter).attributes or {})
    assert attrs["spanhook.run.kind"] == "chain"
    assert attrs["openinference.span.kind"] == "CHAIN"
    assert len(attrs["spanhook.run_id"]) == 36
    assert attrs["app.count"] == 3 and attrs["app.ratio"] == 0.5 and attrs["app.flag"] is True
    # a list goes the SDK's way and comes out as the SDK makes it: a tuple
    assert attrs["app.items"] == ("a", "b")
    assert attrs["spanhook.tags"] == ("t1",)
    assert attrs["spanhook.metadata.user"] == "u1"


def test_a_sampler_that_reads_attributes_sees_them() -> None:
    exporter = InMemorySpanExporter()
    sampler = AttributeSampler()
    provider_with(exporter, sampler=sampler)
    Echo().invoke({"x": 1})
    assert spans._gate[3] == -1
    assert sampler.seen[-1]["spanhook.run.kind"] == "chain"
    assert only_span(exporter).attributes["spanhook.run.kind"] == "chain"  # type: ignore[index]


def test_a_processor_that_reads_attributes_at_start_sees_them() -> None:
    exporter = InMemorySpanExporter()
    tp = provider_with(exporter)
    Echo().invoke({"x": 1})  # direct path first ...
    assert spans._gate[3] >= 0
    reader = StartReader()
    tp.add_span_processor(reader)  # ... then a processor that reads them: the SDK's way
    Echo().invoke({"x": 1})
    assert spans._gate[3] == -1
    assert reader.at_start[-1]["spanhook.run.kind"] == "chain"
    assert reader.at_start[-1]["openinference.span.kind"] == "CHAIN"


def test_span_limits_apply_as_the_sdk_applies_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "8")
    exporter = InMemorySpanExporter()
    provider_with(exporter)
    Echo().invoke({"x": 1})
    assert len(only_span(exporter).attributes["spanhook.run_id"]) == 8  # type: ignore[index, arg-type]
    exporter.clear()

    monkeypatch.delenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
    reset()  # a new global provider, with new limits
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    provider_with(exporter)
    Echo().invoke({"x": 1})
    span = only_span(exporter)
    assert len(span.attributes or {}) == 2
    assert span.dropped_attributes == 1


def test_a_sampled_out_run_still_works() -> None:
    exporter = InMemorySpanExporter()
    provider_with(exporter, sampler=ParentBased(TraceIdRatioBased(0.0)))
    assert Echo().invoke({"x": 1}) == {"x": 1, "y": 1}
    assert exporter.get_finished_spans() == ()


def test_attributes_set_during_a_run_come_out_as_the_sdk_makes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    tp = provider_with(exporter)
    tracer = tp.get_tracer("t")
    span = tracer.start_span("s")
    spans.set_attributes(span, {"a": "x", "n": 2, "f": 0.5, "b": False, "l": ["p", "q"]})
    spans.set_attributes(span, {"n": 3})
    span.end()
    spans.set_attributes(span, {"late": "x"})  # an ended span takes nothing more
    attrs = dict(only_span(exporter).attributes or {})
    assert attrs == {"a": "x", "n": 3, "f": 0.5, "b": False, "l": ("p", "q")}

    # values that are not plain, and the limits, go the SDK's way
    reset()
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    exporter = InMemorySpanExporter()
    tracer = provider_with(exporter).get_tracer("t")
    ours, sdk = tracer.start_span("ours"), tracer.start_span("sdk")
    for batch in ({"a": "1", "b": "2"}, {"c": "3", "d": {"not": "plain"}}):
        spans.set_attributes(ours, batch)
        sdk.set_attributes(batch)
    ours.end()
    sdk.end()
    limited = {s.name: s for s in exporter.get_finished_spans()}
    assert dict(limited["ours"].attributes or {}) == dict(limited["sdk"].attributes or {})
    assert len(limited["ours"].attributes or {}) == 2
    # (SDK 1.45 keeps the mapping value and drops the oldest key for it; 1.44 rejects it)
    assert limited["ours"].dropped_attributes == limited["sdk"].dropped_attributes >= 1
