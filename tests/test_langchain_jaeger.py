"""A LangGraph agent request exported over real OTLP, by an exporter passed with the request,
through the real Collector (this repository's config) into real Jaeger: one trace, the
tool's httpx span nested under the tool's span."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import spanhook
import spanhook.langchain
from collector_harness import (
    collector_binary,
    jaeger_binary,
    jaeger_traces,
    require_binary,
    run_collector,
    run_jaeger,
    wait_until,
)
from lc_app import (
    LocalServer,
    ScriptedToolChatModel,
    build_agent,
    build_approval_graph,
    make_tools,
)


@pytest.fixture
def service() -> Iterator[str]:
    name = f"spanhook-lc-{uuid.uuid4().hex[:8]}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    spanhook.langchain.instrument()
    yield name
    spanhook.langchain.uninstrument()
    HTTPXClientInstrumentor().uninstrument()


@pytest.mark.collector
def test_agent_request_reaches_jaeger_as_one_trace(service: str) -> None:
    collector_bin = require_binary(collector_binary(), "collector")
    jaeger_bin = require_binary(jaeger_binary(), "jaeger")
    server = LocalServer()
    try:
        with (
            run_jaeger(binary=jaeger_bin) as jaeger,
            run_collector(jaeger_endpoint=jaeger.otlp_grpc_endpoint, binary=collector_bin) as col,
        ):
            exporter = OTLPSpanExporter(endpoint=col.grpc_endpoint, insecure=True)
            agent = build_agent(
                ScriptedToolChatModel(server_url=server.url), make_tools(server.url)
            )
            agent.invoke({"messages": [("human", "widgets")]}, {"callbacks": [exporter]})
            assert spanhook.force_flush(timeout=10)

            def complete() -> dict[str, Any] | None:
                for t in jaeger_traces(jaeger.query_port, service):
                    if len(t["spans"]) == 16:
                        return t
                return None

            found = wait_until(complete, timeout=30, interval=0.25, message="trace in Jaeger")
    finally:
        server.close()
    assert found is not None
    spans = {s["spanID"]: s for s in found["spans"]}
    by_op: dict[str, list[dict[str, Any]]] = {}
    for s in spans.values():
        by_op.setdefault(s["operationName"], []).append(s)
    (root,) = [s for s in spans.values() if not s["references"]]
    assert root["operationName"] == "invoke_agent inventory_agent"
    (get,) = by_op["GET"]
    parent = spans[get["references"][0]["spanID"]]
    assert parent["operationName"] == "execute_tool fetch_data"
    assert len(by_op["chat scripted-fake-1"]) == 2


@pytest.mark.collector
def test_a_resumed_graph_links_to_the_paused_trace_in_jaeger(service: str) -> None:
    """A graph paused by ``interrupt()`` and resumed later: two traces in Jaeger, the
    resumed one's root referring to the paused one's root."""
    from langgraph.types import Command

    app = build_approval_graph(name="approval")
    collector_bin = require_binary(collector_binary(), "collector")
    jaeger_bin = require_binary(jaeger_binary(), "jaeger")
    with (
        run_jaeger(binary=jaeger_bin) as jaeger,
        run_collector(jaeger_endpoint=jaeger.otlp_grpc_endpoint, binary=collector_bin) as col,
    ):
        exporter = OTLPSpanExporter(endpoint=col.grpc_endpoint, insecure=True)
        config: Any = {"configurable": {"thread_id": "t"}, "callbacks": [exporter]}
        app.invoke({"item": "order 7", "answer": ""}, config)
        resumed = app.invoke(Command(resume="yes"), config)
        assert resumed == {"item": "order 7", "answer": "approved=yes!"}
        assert spanhook.force_flush(timeout=10)

        def both() -> list[dict[str, Any]] | None:
            traces = jaeger_traces(jaeger.query_port, service)
            sizes = sorted(len(t["spans"]) for t in traces)
            return traces if sizes == [2, 3] else None  # root + ask; root + ask + finish

        traces = wait_until(both, timeout=30, interval=0.25, message="two traces in Jaeger")
    assert traces is not None
    roots = {
        t["traceID"]: next(s for s in t["spans"] if s["operationName"] == "invoke_agent approval")
        for t in traces
    }
    linked = [
        (trace_id, ref)
        for trace_id, root in roots.items()
        for ref in root["references"]
        if ref["traceID"] != trace_id
    ]
    assert len(linked) == 1
    resumed_trace, ref = linked[0]
    paused_trace = next(t for t in roots if t != resumed_trace)
    assert (ref["traceID"], ref["spanID"]) == (paused_trace, roots[paused_trace]["spanID"])
    tags = {t["key"]: t["value"] for log in roots[resumed_trace]["logs"] for t in log["fields"]}
    assert tags["event"] == "spanhook.graph.resumed"
