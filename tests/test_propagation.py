"""Trace context across processes: ``inject_headers`` on the calling side, ``continue_trace``
/ ``extract_context`` on the serving side (W3C traceparent + baggage)."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import baggage
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from collector_harness import GrpcTraceReceiver
from helpers import Recorder
from spanhook.agents import AgentExecutor
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.runtime.run import current_run
from spanhook.tools import Tool

SERVER = Path(__file__).with_name("remote_tool_server.py")
IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK

REMOTE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REMOTE_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{REMOTE_TRACE}-{REMOTE_SPAN}-01"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("OTEL_PROPAGATORS", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS"):
        monkeypatch.delenv(var, raising=False)
    yield
    spanhook.shutdown(timeout=2.0)


def echo_chain() -> LLMChain:
    return LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{q}"), name="echo")


# ------------------------------------------------------------------ in one process


def test_inject_outside_any_run_adds_only_baggage() -> None:
    assert spanhook.inject_headers() == {}
    headers = {"Content-Type": "text/plain"}
    out = spanhook.inject_headers(headers, baggage={"user.id": "u-1"})
    assert out is headers
    assert out == {"Content-Type": "text/plain", "baggage": "user.id=u-1"}


def test_inject_inside_a_run_sends_that_runs_span() -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def tool(q: str) -> str:
        run = current_run()
        assert run is not None
        flags = run.span.get_span_context().trace_flags
        assert flags.sampled
        seen.append((f"00-{run.trace_id}-{run.span_id}-{flags:02x}", spanhook.inject_headers()))
        return q

    Tool(name="t", func=tool, description="d").run("x")
    [(expected, headers)] = seen
    assert headers == {"traceparent": expected}


def test_continue_trace_makes_runs_children_of_the_remote_span(
    memory_exporter: InMemorySpanExporter,
) -> None:
    rec = Recorder()
    with spanhook.continue_trace({"TraceParent": TRACEPARENT, "Baggage": "user.id=u-9"}) as ctx:
        assert baggage.get_baggage("user.id") == "u-9"
        assert baggage.get_baggage("user.id", ctx) == "u-9"
        echo_chain().run(q="hi", callbacks=[rec])
    assert baggage.get_baggage("user.id") is None  # detached again
    spans = {s.name: s for s in memory_exporter.get_finished_spans()}
    chain = spans["echo"]
    assert format(chain.context.trace_id, "032x") == REMOTE_TRACE
    assert chain.parent is not None and chain.parent.is_remote
    assert format(chain.parent.span_id, "016x") == REMOTE_SPAN
    # Locally it is a root run: the parent run lives in the other process.
    assert rec.of("on_chain_start")[0].parent_run_id is None


def test_remote_parent_wins_over_the_local_run(memory_exporter: InMemorySpanExporter) -> None:
    rec = Recorder()

    def serve(q: str) -> str:
        with spanhook.continue_trace({"traceparent": TRACEPARENT}):
            return str(echo_chain().run(q=q, callbacks=[rec]))

    Tool(name="local", func=serve, description="d").run("x")
    spans = {s.name: s for s in memory_exporter.get_finished_spans()}
    assert spans["echo"].parent is not None
    assert format(spans["echo"].parent.span_id, "016x") == REMOTE_SPAN
    assert spans["echo"].context.trace_id != spans["execute_tool local"].context.trace_id
    assert rec.of("on_chain_start")[0].parent_run_id is None


def test_headers_without_trace_context_start_a_new_trace(
    memory_exporter: InMemorySpanExporter,
) -> None:
    def serve(q: str) -> str:
        for headers in ({}, {"traceparent": "garbage"}):
            with spanhook.continue_trace(headers):
                echo_chain().run(q=q)
        return q

    Tool(name="local", func=serve, description="d").run("x")
    spans = memory_exporter.get_finished_spans()
    echoes = [s for s in spans if s.name == "echo"]
    assert len(echoes) == 2
    tool = next(s for s in spans if s.name == "execute_tool local")
    for s in echoes:
        assert s.parent is None
        assert s.context.trace_id != tool.context.trace_id


def test_unsampled_caller_is_not_exported_downstream_but_handlers_run(
    memory_exporter: InMemorySpanExporter,
) -> None:
    rec = Recorder()
    with spanhook.continue_trace({"traceparent": f"00-{REMOTE_TRACE}-{REMOTE_SPAN}-00"}):
        echo_chain().run(q="hi", callbacks=[rec])
    assert memory_exporter.get_finished_spans() == ()
    assert rec.names()[0] == "on_chain_start" and rec.names()[-1] == "on_chain_end"


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(TypeError, match="expected request headers"):
        spanhook.extract_context("traceparent: x")
    with pytest.raises(TypeError, match="takes a dict of header strings"):
        spanhook.inject_headers([("a", "b")])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="baggage entries must be strings"):
        spanhook.inject_headers(baggage={"n": 1})  # type: ignore[dict-item]


# ------------------------------------------------------------------ across processes


def test_one_trace_across_two_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    with GrpcTraceReceiver() as rx:
        endpoint = f"http://{rx.endpoint}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        spanhook.configure(exporters="otlp", service_name="caller")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="remote-tool-server")
        server = subprocess.Popen(
            [sys.executable, str(SERVER)],
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert server.stdout is not None and server.stdin is not None
            line = server.stdout.readline()
            assert line.startswith("PORT "), line + (server.stderr.read() if server.stderr else "")
            url = f"http://127.0.0.1:{int(line.split()[1])}/lookup"

            def remote_lookup(query: str) -> str:
                headers = spanhook.inject_headers(
                    {"Content-Type": "text/plain"}, baggage={"user.id": "u-42"}
                )
                request = urllib.request.Request(
                    url, data=query.encode(), headers=headers, method="POST"
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    return str(response.read().decode())

            agent = AgentExecutor(
                llm=OfflineLLM(),
                tools=[
                    Tool(
                        name="remote_lookup",
                        func=remote_lookup,
                        description="Asks the remote service.",
                    )
                ],
                name="caller-agent",
            )
            question = "Ask remote_lookup about the weather"
            assert agent.run(question) == f"You said: Remote lookup: {question}"
            assert spanhook.force_flush(timeout=10.0)
        finally:
            if server.stdin is not None:
                server.stdin.close()  # the server flushes its spans and exits
            server.wait(10)
        assert server.returncode == 0, server.stderr.read() if server.stderr else ""
        spans = rx.wait_for(6)

    assert len(spans) == 6
    assert len({s.trace_id for s in spans}) == 1  # one trace across both processes
    by_service: dict[str, list[str]] = {}
    for s in sorted(spans, key=lambda s: s.span.start_time_unix_nano):
        by_service.setdefault(s.resource["service.name"], []).append(s.span.name)
    assert by_service == {
        "caller": [
            "invoke_agent caller-agent",
            "text_completion spanhook-offline-1",
            "execute_tool remote_lookup",
            "text_completion spanhook-offline-1",
        ],
        "remote-tool-server": ["remote-lookup", "text_completion spanhook-offline-1"],
    }
    tool = next(s for s in spans if s.span.name == "execute_tool remote_lookup")
    remote = next(s for s in spans if s.span.name == "remote-lookup")
    remote_llm = next(s for s in spans if s.parent_span_id == remote.span_id)
    assert remote.parent_span_id == tool.span_id
    assert remote.span.flags & IS_REMOTE  # its parent is in another process
    assert not tool.span.flags & IS_REMOTE
    assert remote_llm.resource["service.name"] == "remote-tool-server"
    assert not remote_llm.span.flags & IS_REMOTE
    assert remote.attributes["spanhook.metadata.user_id"] == "u-42"  # baggage crossed too
