"""Per-trace sampling that keeps every failed trace: whole traces or nothing, errors always,
a stable share of the rest; bounded memory; flush and shutdown decide held traces. The
configure() path is checked on what a real OTLP receiver on 127.0.0.1 decoded."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from app import Inner, Outer, build
from collector_harness import GrpcTraceReceiver
from spanhook import KeepErrorsSampler
from spanhook.llms import FakeListLLM
from spanhook.tools import Tool
from spanhook.tracing.sampling import SamplingStats, kept_by_ratio

RUNS_PER_REQUEST = 4  # outer chain -> inner chain -> llm + tool


@pytest.fixture
def rx(monkeypatch: pytest.MonkeyPatch) -> Iterator[GrpcTraceReceiver]:
    for var in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS"):
        monkeypatch.delenv(var, raising=False)
    with GrpcTraceReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{receiver.endpoint}")
        yield receiver
        spanhook.shutdown(timeout=2.0)


def requests(n: int, fail_every: int) -> dict[str, bool]:
    """``n`` requests of the nested app, every ``fail_every``-th failing in its tool.
    Returns {trace id (hex): whether the request failed}, as the app itself saw it."""
    trace_ids: list[str] = []

    def tool_func(answer: str) -> str:
        run = spanhook.current_run()
        assert run is not None
        trace_ids.append(run.trace_id)
        if answer == "bad":
            raise ValueError("tool failed")
        return answer

    llm = FakeListLLM(responses=["bad"] + ["ok"] * (fail_every - 1))
    tool = Tool(name="echo_tool", func=tool_func, description="echoes")
    outer = Outer(inner=Inner(llm=llm, tool=tool, name="inner_chain"), name="outer_chain")
    failed: dict[str, bool] = {}
    for i in range(n):
        try:
            outer.invoke({"q": f"q{i}"})
            failed[trace_ids[-1]] = False
        except ValueError:
            failed[trace_ids[-1]] = True
    return failed


def test_configure_keeps_every_failed_trace_and_a_stable_share_of_the_rest_whole(
    rx: GrpcTraceReceiver,
) -> None:
    spanhook.configure(exporters="otlp", keep_ratio=0.25)
    failed = requests(120, fail_every=8)
    assert sum(failed.values()) == 15
    assert spanhook.force_flush(timeout=10.0)

    expected = {t for t, bad in failed.items() if bad or kept_by_ratio(int(t, 16), 0.25)}
    spans = rx.wait_for(len(expected) * RUNS_PER_REQUEST)
    by_trace: dict[str, list[Any]] = defaultdict(list)
    for s in spans:
        by_trace[s.trace_id].append(s)
    assert set(by_trace) == expected
    assert {t for t, bad in failed.items() if bad} <= set(by_trace)  # every failure is there
    assert all(len(v) == RUNS_PER_REQUEST for v in by_trace.values())  # and each trace whole
    kept_ok = len(expected) - sum(failed.values())
    assert 0 < kept_ok < len(failed) - sum(failed.values())  # some, not all, successful traces
    assert len(rx.spans()) == len(expected) * RUNS_PER_REQUEST  # nothing else, no partial traces


def sdk_sampler(
    ratio: float, **kw: Any
) -> tuple[KeepErrorsSampler, InMemorySpanExporter, trace.Tracer]:
    exporter = InMemorySpanExporter()
    sampler = KeepErrorsSampler(SimpleSpanProcessor(exporter), ratio, **kw)
    provider = TracerProvider()
    provider.add_span_processor(sampler)
    trace.set_tracer_provider(provider)
    return sampler, exporter, provider.get_tracer("app")


def test_a_run_inside_an_application_span_is_decided_with_the_application_trace() -> None:
    sampler, exporter, tracer = sdk_sampler(0.0)  # errors only
    outer, *_ = build()
    with tracer.start_as_current_span("http request"):
        outer.invoke({"q": "fine"})
        assert exporter.get_finished_spans() == ()  # held until the trace's root ends
    assert exporter.get_finished_spans() == ()  # no error: dropped whole
    with pytest.raises(RuntimeError), tracer.start_as_current_span("http request"):
        outer.invoke({"q": "fine"})
        raise RuntimeError("handler crashed after the chain")
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert names == sorted(
        [
            "http request",
            "outer_chain",
            "inner_chain",
            "text_completion fake-list",
            "execute_tool echo_tool",
        ]
    )
    assert sampler.stats() == SamplingStats(
        kept_traces=1, dropped_traces=1, late_errors=0, pending_traces=0
    )


def test_memory_is_bounded_and_flush_decides_held_traces() -> None:
    sampler, exporter, tracer = sdk_sampler(1.0, max_traces=10)
    roots = [tracer.start_span(f"root {i}") for i in range(50)]
    for root in roots:  # a child of each open root ends: its trace must be held
        with tracer.start_as_current_span("child", context=trace.set_span_in_context(root)):
            pass
    stats = sampler.stats()
    assert stats.pending_traces <= 10 and stats.kept_traces == 40  # the oldest were decided early
    assert len(exporter.get_finished_spans()) == 40
    assert sampler.force_flush()
    assert sampler.stats().pending_traces == 0 and len(exporter.get_finished_spans()) == 50
    for root in roots:  # roots ending after their trace was kept are forwarded too
        root.end()
    assert len(exporter.get_finished_spans()) == 100


def test_an_error_after_its_trace_was_dropped_is_still_exported() -> None:
    sampler, exporter, tracer = sdk_sampler(0.0, max_traces=1)
    first = tracer.start_span("first root")
    with tracer.start_as_current_span("ok child", context=trace.set_span_in_context(first)):
        pass
    second = tracer.start_span("second root")  # pushes the first trace out, undecided: dropped
    with tracer.start_as_current_span("ok child", context=trace.set_span_in_context(second)):
        pass
    with (
        pytest.raises(KeyError),
        tracer.start_as_current_span("late failure", context=trace.set_span_in_context(first)),
    ):
        raise KeyError("x")
    assert [s.name for s in exporter.get_finished_spans()] == ["late failure"]
    assert sampler.stats().late_errors == 1
    first.end()
    second.end()


def test_shutdown_decides_held_traces_and_shuts_the_processors_down() -> None:
    sampler, exporter, tracer = sdk_sampler(1.0)
    root = tracer.start_span("open root")
    with tracer.start_as_current_span("child", context=trace.set_span_in_context(root)):
        pass
    sampler.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["child"]
    assert exporter._stopped  # the processor behind it was shut down


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (
            (SimpleSpanProcessor(InMemorySpanExporter()), 1.5),
            {},
            ValueError,
            "ratio must be between 0 and 1",
        ),
        (
            (SimpleSpanProcessor(InMemorySpanExporter()), True),
            {},
            ValueError,
            "ratio must be between 0 and 1",
        ),
        (([object()], 0.5), {}, TypeError, r"processors\[0\].*expected a SpanProcessor"),
        (
            (SimpleSpanProcessor(InMemorySpanExporter()), 0.5),
            {"max_traces": 0},
            ValueError,
            "max_traces must be",
        ),
    ],
)
def test_bad_settings_are_named(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        KeepErrorsSampler(*args, **kwargs)


def test_configure_rejects_a_bad_keep_ratio(rx: GrpcTraceReceiver) -> None:
    with pytest.raises(ValueError, match="keep_ratio must be between 0 and 1"):
        spanhook.configure(exporters="otlp", keep_ratio=2)


def test_the_share_agrees_with_otel_trace_id_ratio_sampling_across_processes() -> None:
    """A process head-sampling with TraceIdRatioBased(r) and one tail-sampling here at r
    keep the same traces (the decision depends on the trace id alone)."""
    import random

    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    rng = random.Random(7)
    for ratio in (0.0, 0.1, 0.3, 1.0):
        head = TraceIdRatioBased(ratio)
        for _ in range(500):
            trace_id = rng.getrandbits(128)
            assert (
                kept_by_ratio(trace_id, ratio)
                == head.should_sample(None, trace_id, "x").decision.is_sampled()
            )


def test_keep_ratio_with_a_remote_parent_warns_once(
    rx: GrpcTraceReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    from spanhook.tracing import sampling

    sampling._reset_for_tests()
    spanhook.configure(exporters="otlp", keep_ratio=1.0)
    llm = FakeListLLM(responses=["ok"])
    outer = Outer(
        inner=Inner(llm=llm, tool=Tool(name="t", func=lambda a: a, description="d"), name="in"),
        name="outer_chain",
    )
    with caplog.at_level("WARNING", logger="spanhook.tracing"):
        outer.invoke({"q": "local"})  # a local root: no warning
        assert "decides per process" not in caplog.text
        headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        for _ in range(3):
            with spanhook.continue_trace(headers):
                outer.invoke({"q": "remote"})
    warnings = [r for r in caplog.records if "decides per process" in r.getMessage()]
    assert len(warnings) == 1
    assert "tail-sampling" in warnings[0].getMessage()
