"""End to end: spanhook runs exported with the real OTLP exporters (gRPC and HTTP/protobuf)
to real receivers on 127.0.0.1, then through the real Collector (and Jaeger) running the
repository's collector-config.yaml."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from collector_harness import (
    GrpcTraceReceiver,
    HttpTraceReceiver,
    ReceivedSpan,
    attributes_to_dict,
    collector_binary,
    jaeger_binary,
    jaeger_traces,
    require_binary,
    run_collector,
    run_jaeger,
    wait_until,
)
from helpers import Recorder
from spanhook.demo import DEFAULT_QUESTION, build_agent, run_demo
from spanhook.tracing.export import ExportProcessor

AGENT = "invoke_agent demo-agent"
LLM = "text_completion spanhook-offline-1"
TOOL = "execute_tool calculator"
TRACE_URL = re.compile(r"^Trace: (?P<ui>\S+)/trace/(?P<trace_id>[0-9a-f]{32})$", re.M)


@pytest.fixture(autouse=True)
def _export_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_RESOURCE_ATTRIBUTES",
        "SPANHOOK_JAEGER_UI",
    ):
        monkeypatch.delenv(var, raising=False)
    yield
    spanhook.shutdown(timeout=2.0)


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GrpcTraceReceiver | HttpTraceReceiver]:
    """A real receiver of the protocol, with the OTEL_* variables pointing at it."""
    rx: GrpcTraceReceiver | HttpTraceReceiver
    rx = GrpcTraceReceiver() if request.param == "grpc" else HttpTraceReceiver()
    with rx:
        endpoint = f"http://{rx.endpoint}" if isinstance(rx, GrpcTraceReceiver) else rx.base_url
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", request.param)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "export-test")
        yield rx


def by_name(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    out: dict[str, list[ReceivedSpan]] = {}
    for s in sorted(spans, key=lambda s: s.span.start_time_unix_nano):
        out.setdefault(s.span.name, []).append(s)
    return out


def test_agent_run_arrives_as_a_genai_span_tree(
    receiver: GrpcTraceReceiver | HttpTraceReceiver,
) -> None:
    spanhook.configure(exporters="otlp")
    rec = Recorder()
    answer = build_agent(verbose=False).run(
        DEFAULT_QUESTION, callbacks=[rec], tags=["demo-tag"], metadata={"user": "u-7", "attempt": 2}
    )
    assert answer == "84"
    assert spanhook.force_flush(timeout=10.0)
    spans = receiver.wait_for(4)
    assert len(spans) == 4
    assert len({s.trace_id for s in spans}) == 1
    assert {s.resource["service.name"] for s in spans} == {"export-test"}

    named = by_name(spans)
    assert {k: len(v) for k, v in named.items()} == {AGENT: 1, LLM: 2, TOOL: 1}
    agent, tool = named[AGENT][0], named[TOOL][0]
    llm1, llm2 = named[LLM]
    # The tree: agent -> llm, tool, llm (in that order).
    assert agent.parent_span_id == ""
    for child in (llm1, tool, llm2):
        assert child.parent_span_id == agent.span_id
    assert (
        llm1.span.start_time_unix_nano
        < tool.span.start_time_unix_nano
        < llm2.span.start_time_unix_nano
    )
    assert {s.span.kind for s in spans} == {Span.SpanKind.SPAN_KIND_INTERNAL}
    assert {s.span.status.code for s in spans} == {Status.STATUS_CODE_UNSET}

    # run ids on the spans are the ones the handlers got, with the same parent links.
    starts = {e.name: e for e in rec.starts()}
    a = agent.attributes
    assert a["spanhook.run_id"] == str(starts["demo-agent"].run_id)
    assert a["spanhook.run.kind"] == "agent"
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert a["gen_ai.agent.name"] == "demo-agent"
    for s in spans:
        assert s.attributes["spanhook.tags"] == ["demo-tag"]
        assert s.attributes["spanhook.metadata.user"] == "u-7"
        assert s.attributes["spanhook.metadata.attempt"] == 2

    llm_starts = [e for e in rec.starts() if e.event == "on_llm_start"]
    for span, start in zip((llm1, llm2), llm_starts, strict=True):
        la = span.attributes
        assert la["spanhook.run_id"] == str(start.run_id)
        assert start.parent_run_id == starts["demo-agent"].run_id
        assert la["spanhook.run.kind"] == "llm"
        assert la["gen_ai.operation.name"] == "text_completion"
        assert la["gen_ai.provider.name"] == "spanhook"
        assert la["gen_ai.request.model"] == "spanhook-offline-1"
        assert la["gen_ai.response.model"] == "spanhook-offline-1"
        assert la["gen_ai.response.finish_reasons"] == ["stop"]
        assert la["gen_ai.request.stream"] is True
    # Token usage is the one handlers got in the LLMResult.
    ends = [e for e in rec.events if e.event == "on_llm_end"]
    for span, end in zip((llm1, llm2), ends, strict=True):
        usage = end.args[0].llm_output["token_usage"]
        assert span.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"] > 0
        assert span.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"] > 0

    ta = tool.attributes
    assert ta["spanhook.run_id"] == str(starts["calculator"].run_id)
    assert ta["spanhook.run.kind"] == "tool"
    assert ta["gen_ai.operation.name"] == "execute_tool"
    assert ta["gen_ai.tool.name"] == "calculator"
    assert ta["gen_ai.tool.call.id"] == "call_1"
    assert ta["gen_ai.tool.type"] == "function"
    # The agent's events travel with its span.
    events = [e.name for e in agent.span.events]
    assert events == ["spanhook.agent.action", "spanhook.agent.finish"]
    assert attributes_to_dict(agent.span.events[0].attributes)["gen_ai.tool.name"] == "calculator"


def test_error_run_has_error_status_and_exception_event(
    receiver: GrpcTraceReceiver | HttpTraceReceiver,
) -> None:
    spanhook.configure(exporters="otlp")
    with pytest.raises(ZeroDivisionError):
        build_agent(verbose=False).run("What is 1 / 0?")
    assert spanhook.force_flush(timeout=10.0)
    named = by_name(receiver.wait_for(3))
    assert set(named) == {AGENT, LLM, TOOL}
    for name in (TOOL, AGENT):
        span = named[name][0]
        assert span.span.status.code == Status.STATUS_CODE_ERROR
        assert span.span.status.message == "ZeroDivisionError: division by zero"
        assert span.attributes["error.type"] == "ZeroDivisionError"
        exc = [e for e in span.span.events if e.name == "exception"]
        assert len(exc) == 1
        ea = attributes_to_dict(exc[0].attributes)
        assert ea["exception.type"] == "ZeroDivisionError"
        assert ea["exception.message"] == "division by zero"
        assert "Traceback" in ea["exception.stacktrace"]
        assert ea["exception.escaped"] == "True"
    assert named[LLM][0].span.status.code == Status.STATUS_CODE_UNSET
    assert named[TOOL][0].parent_span_id == named[AGENT][0].span_id


def test_run_demo_prints_the_jaeger_url_of_the_exported_trace(
    receiver: GrpcTraceReceiver | HttpTraceReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANHOOK_JAEGER_UI", "http://jaeger.example:16686/")
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    # Spans dropped earlier in the process (by another exporter) are not this demo's problem.
    earlier = ExportProcessor(InMemorySpanExporter())
    earlier.shutdown()
    other = TracerProvider()
    other.add_span_processor(earlier)
    other.get_tracer("other").start_span("dropped").end()
    assert earlier.dropped_spans == 1
    out = io.StringIO()
    assert run_demo(export="otlp", out=out) == 0
    text = out.getvalue()
    assert "Answer: 84" in text
    m = TRACE_URL.search(text)
    assert m is not None, text
    assert m["ui"] == "http://jaeger.example:16686"
    assert "warning" not in text
    spans = receiver.wait_for(4)  # run_demo flushed and shut down already
    assert len(spans) == 4
    assert {s.trace_id for s in spans} == {m["trace_id"]}
    assert {s.resource["service.name"] for s in spans} == {"spanhook-demo"}
    # The demo opts in to content capture.
    agent = by_name(spans)[AGENT][0]
    assert "What is 12 * (3 + 4)?" in agent.attributes["spanhook.input"]


# ------------------------------------------------------------- through the real Collector


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("spanhook")
    return [str(script)] if script.exists() else [sys.executable, "-m", "spanhook.cli"]


def run_demo_process(env_overrides: dict[str, str]) -> tuple[str, str]:
    """``spanhook demo`` in a child process; returns (stdout, trace id it printed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(env_overrides)
    proc = subprocess.run([*_cli(), "demo"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = TRACE_URL.search(proc.stdout)
    assert m is not None, proc.stdout + proc.stderr
    assert "warning" not in proc.stdout, proc.stdout + proc.stderr
    return proc.stdout, m["trace_id"]


@pytest.mark.collector
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_demo_through_the_collector(protocol: str) -> None:
    collector_bin = require_binary(collector_binary(), "collector")
    service = f"spanhook-demo-{uuid.uuid4().hex[:8]}"
    with (
        GrpcTraceReceiver() as jaeger_stand_in,
        run_collector(jaeger_endpoint=jaeger_stand_in.endpoint, binary=collector_bin) as col,
    ):
        endpoint = (
            f"http://{col.grpc_endpoint}"
            if protocol == "grpc"
            else f"http://127.0.0.1:{col.http_port}"
        )
        _, trace_id = run_demo_process(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_SERVICE_NAME": service,
            }
        )
        try:
            spans = jaeger_stand_in.wait_for(4, timeout=30)
        except TimeoutError:
            pytest.fail(f"the demo's spans did not pass the collector:\n{col.output()}")
    assert {s.trace_id for s in spans} == {trace_id}
    assert {s.resource["service.name"] for s in spans} == {service}
    named = by_name(spans)
    assert {k: len(v) for k, v in named.items()} == {AGENT: 1, LLM: 2, TOOL: 1}
    root = named[AGENT][0]
    assert all(s.parent_span_id == root.span_id for s in spans if s is not root)
    assert named[TOOL][0].attributes["gen_ai.tool.name"] == "calculator"


@pytest.mark.collector
def test_demo_through_the_collector_into_jaeger() -> None:
    collector_bin = require_binary(collector_binary(), "collector")
    jaeger_bin = require_binary(jaeger_binary(), "jaeger")
    service = f"spanhook-demo-{uuid.uuid4().hex[:8]}"
    with (
        run_jaeger(binary=jaeger_bin) as jaeger,
        run_collector(jaeger_endpoint=jaeger.otlp_grpc_endpoint, binary=collector_bin) as col,
    ):
        stdout, trace_id = run_demo_process(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{col.grpc_endpoint}",
                "OTEL_SERVICE_NAME": service,
                "SPANHOOK_JAEGER_UI": jaeger.query_url,
            }
        )
        assert f"Trace: {jaeger.query_url}/trace/{trace_id}" in stdout

        def complete() -> dict[str, Any] | None:
            for t in jaeger_traces(jaeger.query_port, service):
                if t["traceID"] == trace_id and len(t["spans"]) == 4:
                    return t
            return None

        try:
            found = wait_until(complete, timeout=30, interval=0.25, message="demo trace in Jaeger")
        except TimeoutError:
            pytest.fail(
                f"trace not in Jaeger\ncollector:\n{col.output()}\njaeger:\n{jaeger.output()}"
            )
    ops = sorted(s["operationName"] for s in found["spans"])
    assert ops == sorted([AGENT, LLM, LLM, TOOL])
    root = next(s for s in found["spans"] if s["operationName"] == AGENT)
    assert root["references"] == []
    for s in found["spans"]:
        if s is not root:
            assert s["references"] == [
                {"refType": "CHILD_OF", "traceID": trace_id, "spanID": root["spanID"]}
            ]
    assert found["processes"][root["processID"]]["serviceName"] == service
    tags = {t["key"]: t["value"] for t in root["tags"]}
    assert tags["gen_ai.agent.name"] == "demo-agent"
    assert tags["spanhook.run.kind"] == "agent"
