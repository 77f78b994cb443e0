"""A run's span starts without the SDK's generic ``Tracer.start_span`` when the sampler's
answer is known (``runtime.spans._lean_start``): it must make the span the SDK makes, for
every parent and sampler, or hand the start back to the SDK."""

from __future__ import annotations

import random
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from spanhook.chains import Chain
from spanhook.runtime import spans

ROOT, CHILD = spans._ROOT, spans._CHILD


class SeededIds(IdGenerator):
    """The same ids for the same seed: the lean start and the SDK's get equal ids."""

    def __init__(self, random_trace_id: bool = False) -> None:
        self.rng = random.Random(0)
        self.random_trace_id = random_trace_id

    def reseed(self) -> None:
        self.rng = random.Random(0)

    def generate_span_id(self) -> int:
        return self.rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.rng.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return self.random_trace_id


class StartLog(SpanProcessor):
    """What ``on_start`` is given: the span and its parent context."""

    def __init__(self) -> None:
        self.started: list[tuple[Span, otel_context.Context | None]] = []

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self.started.append((span, parent_context))


STATE = TraceState([("vendor", "v1")])


def parent_context(which: str) -> otel_context.Context:
    """A context whose current span is the named kind of parent."""
    flags = {
        "local sampled": TraceFlags(TraceFlags.SAMPLED),
        "local sampled random": TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID),
        "local unsampled": TraceFlags(TraceFlags.DEFAULT),
        "remote sampled": TraceFlags(TraceFlags.SAMPLED),
        "remote unsampled": TraceFlags(TraceFlags.DEFAULT),
    }
    if which == "root":
        return otel_context.Context()
    if which == "invalid parent":
        return trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())
    sc = SpanContext(0xABC, 0xDEF, which.startswith("remote"), flags[which], STATE)
    return trace.set_span_in_context(NonRecordingSpan(sc), otel_context.Context())


PARENTS = [
    "root",
    "invalid parent",
    "local sampled",
    "local sampled random",
    "local unsampled",
    "remote sampled",
    "remote unsampled",
]
SAMPLERS: list[tuple[str, Sampler, int]] = [
    ("default", ParentBased(ALWAYS_ON), ROOT | CHILD),
    ("DEFAULT_ON", DEFAULT_ON, ROOT | CHILD),
    ("always_on", ALWAYS_ON, ROOT | CHILD),
    ("parentbased_traceidratio", ParentBasedTraceIdRatio(0.5), CHILD),
    ("parentbased_always_off", ParentBased(ALWAYS_OFF), CHILD),
    ("traceidratio", TraceIdRatioBased(0.5), 0),
    ("always_off", ALWAYS_OFF, 0),
]


def sdk_fields(span: trace.Span) -> dict[str, Any]:
    """Everything a started span holds that the SDK sets at start."""
    assert isinstance(span, Span), span
    return {
        "type": type(span),
        "name": span.name,
        "context": span.get_span_context(),
        "parent": span.parent,
        "kind": span.kind,
        "resource": span.resource,
        "scope": span.instrumentation_scope,
        "info": span._instrumentation_info,
        "attributes": dict(span.attributes or {}),
        "sampler": span._sampler,
        "processor": span._span_processor,
        "limits": span._limits,
        "record_exception": span._record_exception,
        "status_on_exception": span._set_status_on_exception,
        "links": tuple(span.links),
        "events": tuple(span.events),
        "started": span.start_time is not None,
        "ended": span.end_time is not None,
        "metrics": span._record_end_metrics is not None,
    }


@pytest.mark.parametrize("which", PARENTS)
@pytest.mark.parametrize(("label", "sampler", "serves"), SAMPLERS, ids=[s[0] for s in SAMPLERS])
@pytest.mark.parametrize("random_ids", [False, True], ids=["plain ids", "random ids"])
@pytest.mark.parametrize("kind", [SpanKind.INTERNAL, SpanKind.CLIENT], ids=str)
def test_the_lean_start_makes_the_sdks_span_or_hands_the_start_back(
    which: str, label: str, sampler: Sampler, serves: int, random_ids: bool, kind: SpanKind
) -> None:
    assert spans._lean_parents(sampler) == serves, label
    ids = SeededIds(random_ids)
    log = StartLog()
    tp = TracerProvider(sampler=sampler, id_generator=ids)
    tp.add_span_processor(log)
    tracer = tp.get_tracer("spanhook.test", "1.0")
    ctx = parent_context(which)

    ours = spans._lean_start(tracer, "run", ctx, kind, serves) if serves else None
    ids.reseed()
    sdk = tracer.start_span("run", ctx, kind)

    recorded = isinstance(sdk, Span)
    local_sampled = which.startswith("local sampled")
    expected_lean = recorded and (
        (which in ("root", "invalid parent") and bool(serves & ROOT))
        or (local_sampled and bool(serves & CHILD))
    )
    if not expected_lean:
        assert ours is None, f"{label} / {which}: the SDK must start this span"
        return
    assert ours is not None, f"{label} / {which}: the lean start serves this span"
    assert sdk_fields(ours) == sdk_fields(sdk)
    (ours_start, ours_parent), (sdk_start, sdk_parent) = log.started
    assert (ours_start, sdk_start) == (ours, sdk)
    assert ours_parent is ctx and sdk_parent is ctx
    if which != "root" and which != "invalid parent":
        assert ours.get_span_context().trace_state == STATE  # type: ignore[attr-defined]
        assert ours.get_span_context().trace_flags.random_trace_id == which.endswith("random")


def test_a_disabled_tracer_gets_the_sdks_non_recording_span() -> None:
    tp = TracerProvider()
    tracer = tp.get_tracer("spanhook.test")
    tracer._tracer_config = type(tracer._tracer_config)(is_enabled=False)  # type: ignore[attr-defined]
    assert spans._lean_start(tracer, "run", otel_context.Context(), SpanKind.INTERNAL, 3) is None
    assert not tracer.start_span("run").is_recording()


def test_a_parent_without_a_span_context_gets_the_sdks_error() -> None:
    class Odd(NonRecordingSpan):
        def get_span_context(self) -> Any:
            return "not a span context"

    tracer = TracerProvider().get_tracer("spanhook.test")
    ctx = trace.set_span_in_context(Odd(trace.INVALID_SPAN_CONTEXT), otel_context.Context())
    assert spans._lean_start(tracer, "run", ctx, SpanKind.INTERNAL, 3) is None
    with pytest.raises(TypeError, match="SpanContext"):
        tracer.start_span("run", ctx)


def test_the_sdks_span_metrics_count_lean_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the SDK's own span metrics on, a lean start counts as a started and live span
    exactly as the SDK's start does."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    tracer = TracerProvider(meter_provider=meters).get_tracer("spanhook.test")
    ctx = otel_context.Context()

    def counts() -> dict[str, float]:
        data = reader.get_metrics_data()
        assert data is not None
        return {
            # a counter's points have a value; a histogram's (durations) a count
            metric.name: sum(
                p.value if hasattr(p, "value") else p.count for p in metric.data.data_points
            )
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        }

    lean = spans._lean_start(tracer, "run", ctx, SpanKind.INTERNAL, 3)
    assert lean is not None
    after_lean = counts()
    sdk = tracer.start_span("run", ctx)
    after_sdk = counts()
    assert after_lean and all(after_sdk[name] == 2 * after_lean[name] for name in after_lean)
    lean.end()
    sdk.end()
    ended = counts()
    live = [name for name in ended if "live" in name]
    assert live and all(ended[name] == 0 for name in live)


class Echo(Chain):
    input_keys = ["x"]
    output_keys = ["y"]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"y": inputs["x"]}


def test_runs_under_the_default_sampler_start_lean_and_export_as_before() -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tp)
    lean_starts: list[trace.Span | None] = []
    real = spans._lean_start

    def counting(*args: Any) -> trace.Span | None:
        span = real(*args)
        lean_starts.append(span)
        return span

    spans._lean_start = counting  # type: ignore[assignment]
    try:
        with trace.get_tracer("app").start_as_current_span("request"):
            Echo().invoke({"x": 1})
    finally:
        spans._lean_start = real  # type: ignore[assignment]
    assert spans.LEAN_SDK, "the installed SDK is one the lean start follows"
    assert len(lean_starts) == 1 and lean_starts[0] is not None
    finished: dict[str, ReadableSpan] = {s.name: s for s in exporter.get_finished_spans()}
    run, request = finished["Echo"], finished["request"]
    assert run.parent == request.context
    assert run.context.trace_id == request.context.trace_id  # type: ignore[union-attr]
    assert run.attributes["spanhook.run.kind"] == "chain"  # type: ignore[index]
