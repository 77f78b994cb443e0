"""spanhook's export never traces itself: with the HTTP client inside the OTLP exporter
instrumented (opentelemetry-instrumentation-requests / -grpc), exporting makes no spans,
while the same client used by the application still does. Real exporters, real receivers
on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient
from opentelemetry.instrumentation.requests import RequestsInstrumentor

import spanhook
from collector_harness import GrpcTraceReceiver, HttpTraceReceiver
from spanhook.demo import DEFAULT_QUESTION, build_agent

AGENT_SPANS = 4


@pytest.fixture
def instrumented_requests() -> Iterator[None]:
    RequestsInstrumentor().instrument()
    yield
    RequestsInstrumentor().uninstrument()


@pytest.fixture
def instrumented_grpc() -> Iterator[None]:
    GrpcInstrumentorClient().instrument()
    yield
    GrpcInstrumentorClient().uninstrument()


def _run_agents(n: int) -> None:
    for _ in range(n):
        assert build_agent(verbose=False).run(DEFAULT_QUESTION) == "84"


def test_http_exporter_inside_instrumented_requests_makes_no_spans(
    instrumented_requests: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HttpTraceReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.base_url)
        spanhook.configure(exporters="otlp")
        # The instrumentation is live: the application's own request is traced.
        with trace.get_tracer("app").start_as_current_span("app-request"):
            assert requests.get(f"{rx.base_url}/health", timeout=5).status_code == 501
        for _ in range(3):  # several export rounds: a traced export would show up in the next
            _run_agents(2)
            assert spanhook.force_flush(timeout=10.0) is True
        spanhook.shutdown(timeout=2.0)
        spans = rx.spans()
    names = sorted(s.span.name for s in spans)
    client_spans = [s for s in spans if s.span.kind == s.span.SPAN_KIND_CLIENT]
    assert len(rx.exports) >= 3  # the exporter really posted several times
    assert len(client_spans) == 1, names  # only the application's GET, no POST /v1/traces
    assert client_spans[0].span.name == "GET"
    assert len(spans) == 2 + 3 * 2 * AGENT_SPANS


def test_grpc_exporter_inside_instrumented_grpc_makes_no_spans(
    instrumented_grpc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GrpcTraceReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{rx.endpoint}")
        spanhook.configure(exporters="otlp")
        for _ in range(3):
            _run_agents(2)
            assert spanhook.force_flush(timeout=10.0) is True
        spanhook.shutdown(timeout=2.0)
        spans = rx.spans()
    names = [s.span.name for s in spans]
    assert len(rx.exports) >= 3
    assert not [n for n in names if "TraceService" in n], names
    assert len(spans) == 3 * 2 * AGENT_SPANS
