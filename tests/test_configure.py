"""``spanhook.configure()`` from the standard OTEL_* variables, proven by where spans arrive:
real OTLP exporters sending to real gRPC / HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from collector_harness import GrpcTraceReceiver, HttpTraceReceiver, ReceivedSpan
from helpers import Recorder
from spanhook.demo import build_agent
from spanhook.runtime.run import current_run
from spanhook.tracing.settings import get_settings

QUESTION = "What is 12 * (3 + 4)?"
AGENT_SPANS = 4  # invoke_agent, text_completion, execute_tool, text_completion

_ENV = (
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_PROPAGATORS",
)


@pytest.fixture(autouse=True)
def _export_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    yield
    spanhook.shutdown(timeout=2.0)  # stop this test's export threads


@pytest.fixture
def grpc_rx() -> Iterator[GrpcTraceReceiver]:
    with GrpcTraceReceiver() as rx:
        yield rx


@pytest.fixture
def http_rx() -> Iterator[HttpTraceReceiver]:
    with HttpTraceReceiver() as rx:
        yield rx


def run_agent(rec: Recorder | None = None) -> str:
    trace_ids: list[str] = []

    class TraceId(Recorder):
        def on_chain_start(self, *args: object, **kwargs: object) -> None:
            run = current_run()
            assert run is not None
            trace_ids.append(run.trace_id)

    assert (
        build_agent(verbose=False).run(QUESTION, callbacks=[TraceId(), *([rec] if rec else [])])
        == "84"
    )
    return trace_ids[0]


def flushed_spans(rx: GrpcTraceReceiver | HttpTraceReceiver, n: int) -> list[ReceivedSpan]:
    assert spanhook.force_flush(timeout=10.0)
    return rx.wait_for(n, timeout=10)


def test_service_name_and_otlp_endpoint_from_env(
    monkeypatch: pytest.MonkeyPatch, grpc_rx: GrpcTraceReceiver
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-from-env")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{grpc_rx.endpoint}")
    tp = spanhook.configure()
    assert trace.get_tracer_provider() is tp
    trace_id = run_agent()
    spans = flushed_spans(grpc_rx, AGENT_SPANS)
    assert len(spans) == AGENT_SPANS
    assert {s.trace_id for s in spans} == {trace_id}
    assert {s.resource["service.name"] for s in spans} == {"svc-from-env"}
    assert set(grpc_rx.spans_by_scope()) == {"spanhook"}


@pytest.mark.parametrize("protocol", [None, "grpc", "http/protobuf"])
def test_protocol_selects_the_transport(
    monkeypatch: pytest.MonkeyPatch,
    grpc_rx: GrpcTraceReceiver,
    http_rx: HttpTraceReceiver,
    protocol: str | None,
) -> None:
    if protocol is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    expected, other = (http_rx, grpc_rx) if protocol == "http/protobuf" else (grpc_rx, http_rx)
    base = (
        expected.base_url
        if isinstance(expected, HttpTraceReceiver)
        else f"http://{expected.endpoint}"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    spanhook.configure(exporters="otlp")
    trace_id = run_agent()
    spans = flushed_spans(expected, AGENT_SPANS)
    assert {s.trace_id for s in spans} == {trace_id}
    assert {e.transport for e in expected.exports} == {
        "http" if protocol == "http/protobuf" else "grpc"
    }
    assert other.exports == []


def test_traces_protocol_variable_wins(
    monkeypatch: pytest.MonkeyPatch, http_rx: HttpTraceReceiver
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_rx.base_url)
    spanhook.configure(exporters="otlp")
    run_agent()
    assert len(flushed_spans(http_rx, AGENT_SPANS)) == AGENT_SPANS


def test_grpc_traces_endpoint_overrides_the_generic_one(
    monkeypatch: pytest.MonkeyPatch, grpc_rx: GrpcTraceReceiver
) -> None:
    with GrpcTraceReceiver() as generic:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{generic.endpoint}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://{grpc_rx.endpoint}")
        spanhook.configure(exporters="otlp")
        run_agent()
        assert len(flushed_spans(grpc_rx, AGENT_SPANS)) == AGENT_SPANS
        assert generic.exports == []


def test_http_endpoint_gets_the_signal_path_and_traces_endpoint_is_used_as_is(
    monkeypatch: pytest.MonkeyPatch, http_rx: HttpTraceReceiver
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    # The generic endpoint is a base URL: the exporter appends /v1/traces.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_rx.base_url)
    spanhook.configure(exporters="otlp")
    run_agent()
    assert len(flushed_spans(http_rx, AGENT_SPANS)) == AGENT_SPANS

    with HttpTraceReceiver() as traces_rx:
        # The per-signal endpoint is the full URL and takes precedence.
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces_rx.endpoint)
        http_rx.clear()
        spanhook.configure(exporters="otlp")
        run_agent()
        assert len(flushed_spans(traces_rx, AGENT_SPANS)) == AGENT_SPANS
        assert http_rx.exports == []


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_headers_reach_the_receiver(
    monkeypatch: pytest.MonkeyPatch,
    grpc_rx: GrpcTraceReceiver,
    http_rx: HttpTraceReceiver,
    protocol: str,
) -> None:
    rx: GrpcTraceReceiver | HttpTraceReceiver = grpc_rx if protocol == "grpc" else http_rx
    base = f"http://{grpc_rx.endpoint}" if protocol == "grpc" else http_rx.base_url
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,x-scope-orgid=team%20a")
    spanhook.configure(exporters="otlp")
    run_agent()
    flushed_spans(rx, AGENT_SPANS)
    for export in rx.exports:
        assert export.headers["x-tenant"] == "acme"
        assert export.headers["x-scope-orgid"] == "team a"


def test_comma_list_exports_to_every_exporter(
    monkeypatch: pytest.MonkeyPatch, grpc_rx: GrpcTraceReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console, otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{grpc_rx.endpoint}")
    spanhook.configure()
    trace_id = run_agent()
    assert len(flushed_spans(grpc_rx, AGENT_SPANS)) == AGENT_SPANS
    out = capsys.readouterr().out
    assert f"Trace {trace_id}:" in out
    assert "invoke_agent demo-agent" in out


def test_exporter_none_exports_nothing_and_handlers_still_run(
    monkeypatch: pytest.MonkeyPatch, grpc_rx: GrpcTraceReceiver
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{grpc_rx.endpoint}")
    before = spanhook.export_stats()
    spanhook.configure()
    rec = Recorder()
    run_agent(rec)
    assert spanhook.force_flush(timeout=5.0)
    assert len(rec.starts()) == AGENT_SPANS
    assert grpc_rx.exports == []
    assert spanhook.export_stats() == before


class SampledFlags(Recorder):
    """Records whether each started run's span was sampled."""

    def __init__(self) -> None:
        super().__init__()
        self.sampled: list[bool] = []

    def _note(self) -> None:
        run = current_run()
        assert run is not None
        self.sampled.append(run.span.get_span_context().trace_flags.sampled)

    def on_chain_start(self, *args: object, **kwargs: object) -> None:
        self._note()
        super().on_chain_start(*args, **kwargs)  # type: ignore[misc]

    def on_llm_start(self, *args: object, **kwargs: object) -> None:
        self._note()
        super().on_llm_start(*args, **kwargs)  # type: ignore[misc]

    def on_tool_start(self, *args: object, **kwargs: object) -> None:
        self._note()
        super().on_tool_start(*args, **kwargs)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("sampler", "arg"),
    [("always_off", None), ("traceidratio", "0"), ("parentbased_always_off", None)],
)
def test_sampled_out_runs_are_not_exported_but_handlers_get_every_event(
    monkeypatch: pytest.MonkeyPatch, grpc_rx: GrpcTraceReceiver, sampler: str, arg: str | None
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    if arg is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{grpc_rx.endpoint}")
    spanhook.configure(exporters="otlp")
    rec = SampledFlags()
    run_agent(rec)
    assert spanhook.force_flush(timeout=5.0)
    assert rec.sampled == [False] * AGENT_SPANS
    assert rec.names() == [
        "on_chain_start",
        "on_llm_start",
        "on_llm_new_token",
        *(["on_llm_new_token"] * 24),
        "on_llm_end",
        "on_agent_action",
        "on_tool_start",
        "on_tool_end",
        "on_llm_start",
        *(["on_llm_new_token"] * 9),
        "on_llm_end",
        "on_agent_finish",
        "on_chain_end",
    ]
    assert grpc_rx.exports == []


def test_traceidratio_exports_whole_traces_of_a_fraction_of_runs(
    monkeypatch: pytest.MonkeyPatch, grpc_rx: GrpcTraceReceiver
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{grpc_rx.endpoint}")
    spanhook.configure(exporters="otlp")
    rec = Recorder()
    runs = [run_agent(rec) for _ in range(40)]
    assert spanhook.force_flush(timeout=10.0)
    assert len(rec.of("on_chain_start")) == 40  # handlers saw every run
    received: dict[str, int] = {}
    for span in grpc_rx.spans():
        received[span.trace_id] = received.get(span.trace_id, 0) + 1
    # Some runs exported, some not (chance of all-or-nothing: 2 in 2**40), never partial traces.
    assert 0 < len(received) < 40
    assert set(received) <= set(runs)
    assert set(received.values()) == {AGENT_SPANS}


def test_configure_twice_does_not_export_twice(
    monkeypatch: pytest.MonkeyPatch, grpc_rx: GrpcTraceReceiver
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{grpc_rx.endpoint}")
    tp1 = spanhook.configure(exporters="otlp")
    tp2 = spanhook.configure(exporters="otlp")
    assert tp1 is tp2
    trace_id = run_agent()
    spans = flushed_spans(grpc_rx, AGENT_SPANS)
    assert len(spans) == AGENT_SPANS
    assert len({s.span_id for s in spans}) == AGENT_SPANS
    assert {s.trace_id for s in spans} == {trace_id}


def test_configure_adds_to_the_applications_provider(
    monkeypatch: pytest.MonkeyPatch, grpc_rx: GrpcTraceReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    app_memory = InMemorySpanExporter()
    app_tp = TracerProvider(resource=Resource.create({"service.name": "the-app"}))
    app_tp.add_span_processor(SimpleSpanProcessor(app_memory))
    trace.set_tracer_provider(app_tp)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{grpc_rx.endpoint}")
    with caplog.at_level(logging.WARNING, logger="spanhook.configure"):
        tp = spanhook.configure(exporters="otlp", service_name="ignored")
    assert tp is app_tp
    assert trace.get_tracer_provider() is app_tp
    assert "keeps its resource" in caplog.text

    with app_tp.get_tracer("the-app").start_as_current_span("http request") as request_span:
        trace_id = run_agent()
    assert trace_id == format(request_span.get_span_context().trace_id, "032x")
    spans = flushed_spans(grpc_rx, AGENT_SPANS + 1)
    # The application's own processor still gets everything; spanhook's export adds to it.
    assert {format(s.context.span_id, "016x") for s in app_memory.get_finished_spans()} == {
        s.span_id for s in spans
    }
    assert {s.resource["service.name"] for s in spans} == {"the-app"}
    root = next(s for s in spans if s.span.name == "http request")
    agent = next(s for s in spans if s.span.name == "invoke_agent demo-agent")
    assert agent.parent_span_id == root.span_id


@pytest.mark.parametrize(
    "var", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_invalid_protocol_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "http/json")
    with pytest.raises(
        ValueError,
        match=rf"{var}='http/json' is not a supported OTLP protocol: use one of grpc, http/protobuf",
    ):
        spanhook.configure(exporters="otlp", capture_content=True)
    # Nothing was half-configured.
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert get_settings().capture_content is False


def test_unknown_exporter_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,zipkin-typo")
    with pytest.raises(
        ValueError, match=r"unknown trace exporter 'zipkin-typo'.*use one of .*otlp"
    ):
        spanhook.configure()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


class FailingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None


def test_provider_flush_reaches_every_exporter_and_reports_failure() -> None:
    memory = InMemorySpanExporter()
    app_tp = TracerProvider()
    trace.set_tracer_provider(app_tp)
    spanhook.configure(exporters=[FailingExporter(), memory])
    before = spanhook.export_stats()
    run_agent()
    # The application flushes its provider: one exporter failed (reported), the other
    # was still flushed completely.
    assert app_tp.force_flush(5000) is False
    assert len(memory.get_finished_spans()) == AGENT_SPANS
    # The failed batch is held for a retry; shutdown counts it as dropped.
    spanhook.shutdown(timeout=1.0)
    assert spanhook.export_stats().dropped_spans - before.dropped_spans == AGENT_SPANS
