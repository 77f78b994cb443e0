"""LangGraph's control flow is not a failure. ``interrupt()`` pauses a graph for a human by
raising ``GraphInterrupt`` through the node's run, and a subgraph node hands a ``Command`` to
its parent graph by raising ``ParentCommand``; langchain-core reports both as run errors.
spanhook records them as span events with an unset status, and its built-in handlers see a
stopped run, not a failed one. A real error in the same graph is still an error."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import spanhook
from lc_app import ApprovalState as State
from lc_app import build_approval_graph
from spanhook.callbacks import (
    ConsoleCallbackHandler,
    MonitorCallbackHandler,
    RequestLoggerCallbackHandler,
)

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")


def _approval_graph(fail: bool = False, **compile: Any) -> Any:
    return build_approval_graph(fail=fail, **compile)


def _span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def _statuses(exporter: InMemorySpanExporter) -> set[StatusCode]:
    return {s.status.status_code for s in exporter.get_finished_spans()}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_interrupt_pauses_the_graph_without_an_error(
    traced: InMemorySpanExporter, mode: str
) -> None:
    app = _approval_graph()
    config: Any = {"configurable": {"thread_id": f"refund-{mode}"}}

    def run(value: Any) -> Any:
        if mode == "sync":
            return app.invoke(value, config)
        return asyncio.run(app.ainvoke(value, config))

    with spanhook.capture_content(True):
        paused = run({"item": "order 7", "answer": ""})
    (pending,) = paused["__interrupt__"]
    assert _statuses(traced) == {StatusCode.UNSET}
    ask = _span(traced, "ask")
    (event,) = ask.events
    assert event.name == "spanhook.graph.interrupt"
    assert (event.attributes or {})["spanhook.graph.signal"] == "GraphInterrupt"
    assert (event.attributes or {})["spanhook.graph.interrupt.ids"] == (pending.id,)
    values = json.loads(str((event.attributes or {})["spanhook.graph.interrupt.values"]))
    assert values == [{"question": "refund order 7?"}]
    assert "error.type" not in (ask.attributes or {})

    traced.clear()
    assert run(Command(resume="yes")) == {"item": "order 7", "answer": "approved=yes!"}
    assert {s.name for s in traced.get_finished_spans()} == {
        "ask",
        "finish",
        "invoke_agent LangGraph",
    }
    assert _statuses(traced) == {StatusCode.UNSET}


def test_a_real_error_in_the_same_graph_is_still_an_error(traced: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="approval service down"):
        _approval_graph(fail=True).invoke(
            {"item": "x", "answer": ""}, {"configurable": {"thread_id": "down"}}
        )
    ask = _span(traced, "ask")
    assert ask.status.status_code == StatusCode.ERROR
    assert (ask.attributes or {})["error.type"] == "ValueError"
    assert [e.name for e in ask.events] == ["exception"]


def test_a_command_to_the_parent_graph_is_not_an_error(traced: InMemorySpanExporter) -> None:
    def escalate(state: State) -> Command[Any]:
        return Command(graph=Command.PARENT, goto="human", update={"answer": "escalated"})

    inner = StateGraph(State)
    inner.add_node("escalate", escalate)
    inner.add_edge(START, "escalate")

    def human(state: State) -> dict[str, str]:
        return {"answer": state["answer"] + " to a human"}

    outer = StateGraph(State)
    outer.add_node("triage", inner.compile())
    outer.add_node("human", human)
    outer.add_edge(START, "triage")
    outer.add_edge("human", END)
    out = outer.compile().invoke({"item": "x", "answer": ""})
    assert out["answer"] == "escalated to a human"
    assert _statuses(traced) == {StatusCode.UNSET}
    signals = [
        (e.name, (e.attributes or {})["spanhook.graph.signal"])
        for s in traced.get_finished_spans()
        for e in s.events
    ]
    assert signals and set(signals) == {("spanhook.graph.bubble_up", "ParentCommand")}


def test_built_in_handlers_see_a_stopped_run_not_a_failure(
    traced: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = MonitorCallbackHandler()
    console_out = io.StringIO()
    console = ConsoleCallbackHandler(stream=console_out, tree=False)
    caplog.set_level(logging.INFO, logger="spanhook.requests")
    handlers = [monitor, console, RequestLoggerCallbackHandler()]
    _approval_graph().invoke(
        {"item": "y", "answer": ""},
        {"configurable": {"thread_id": "handlers"}, "callbacks": handlers},
    )
    records = {r.name: r for r in monitor.records()}
    assert records["ask"].ok and records["ask"].error_type is None
    assert all(r.ok for r in monitor.records())
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == []
    stopped = [r for r in caplog.records if "stopped by GraphInterrupt" in r.getMessage()]
    assert [r.spanhook["signal"] for r in stopped] == ["GraphInterrupt"]  # type: ignore[attr-defined]
    printed = console_out.getvalue()
    assert "stopped by" in printed and "GraphInterrupt" in printed
    assert "errored" not in printed


# -- the graph's lifecycle: paused, resumed, and linked ----------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_resumed_graph_links_to_the_run_it_resumes(
    traced: InMemorySpanExporter, mode: str
) -> None:
    """An ``interrupt()`` and an ``interrupt_before`` breakpoint pause the graph; each
    resumed run records where it resumed from and links to the paused run's span."""
    from langgraph.callbacks import GraphCallbackHandler

    class Mine(GraphCallbackHandler):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def on_interrupt(self, event: Any) -> None:
            self.seen.append(f"interrupt:{event.status}")

        def on_resume(self, event: Any) -> None:
            self.seen.append(f"resume:{event.status}")

    mine = Mine()
    graph = _approval_graph(interrupt_before=["finish"])
    config: Any = {"configurable": {"thread_id": f"links-{mode}"}, "callbacks": [mine]}
    for value in ({"item": "z", "answer": ""}, Command(resume="ok"), None):
        if mode == "sync":
            graph.invoke(value, config)
        else:
            asyncio.run(graph.ainvoke(value, config))
    roots = [s for s in traced.get_finished_spans() if s.name == "invoke_agent LangGraph"]
    assert len(roots) == 3
    events = [[(e.name, dict(e.attributes or {})) for e in r.events] for r in roots]
    (paused1,), (resumed2, paused2), (resumed3,) = events
    assert paused1[0] == paused2[0] == "spanhook.graph.paused"
    assert (paused1[1]["spanhook.graph.status"], paused2[1]["spanhook.graph.status"]) == (
        "pending",
        "interrupt_before",
    )
    assert len(paused1[1]["spanhook.graph.interrupt.ids"]) == 1
    assert resumed2[0] == resumed3[0] == "spanhook.graph.resumed"
    assert resumed2[1]["spanhook.graph.checkpoint_id"] == paused1[1]["spanhook.graph.checkpoint_id"]
    assert resumed3[1]["spanhook.graph.checkpoint_id"] == paused2[1]["spanhook.graph.checkpoint_id"]
    assert [[link.context.span_id for link in r.links] for r in roots] == [
        [],
        [roots[0].context.span_id],
        [roots[1].context.span_id],
    ]
    assert mine.seen == [
        "interrupt:pending",
        "resume:pending",
        "interrupt:interrupt_before",
        "resume:pending",
    ]


def test_the_paused_runs_are_process_state_cleared_by_the_public_reset(
    traced: InMemorySpanExporter,
) -> None:
    import spanhook.testing
    from spanhook.langchain.graph_events import PAUSED

    before = len(PAUSED)
    _approval_graph().invoke({"item": "z", "answer": ""}, {"configurable": {"thread_id": "r"}})
    assert len(PAUSED) == before + 1
    spanhook.testing.reset()
    assert len(PAUSED) == 0


def test_paused_runs_are_bounded() -> None:
    from opentelemetry.trace import SpanContext

    from spanhook.langchain.graph_events import PausedRuns

    paused = PausedRuns(limit=2)
    spans = [SpanContext(1, i + 1, False) for i in range(3)]
    for i, span in enumerate(spans):
        paused.remember(((), f"cp-{i}"), span)
    assert len(paused) == 2
    assert paused.find(((), "cp-0")) is None
    assert paused.find(((), "cp-2")) is spans[2]


def test_a_native_run_an_interrupt_passes_through_is_not_failed(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """A native spanhook tool that calls ``interrupt()`` inside a LangGraph node: its span
    records the interrupt, unset; classic handlers get ``on_tool_error`` as langchain-core
    would deliver it, run-tracking handlers a stopped run."""
    from langgraph.errors import GraphInterrupt
    from langgraph.types import Interrupt

    from spanhook.testing import Recorder
    from spanhook.tools import tool

    @tool
    def approve(item: str) -> str:
        """Ask a human."""
        raise GraphInterrupt([Interrupt(value=f"approve {item}?", id="i-1")])

    monitor = MonitorCallbackHandler()
    recorder = Recorder()
    with pytest.raises(GraphInterrupt):
        approve.invoke("refund", callbacks=[recorder, monitor])
    (span,) = memory_exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.UNSET
    assert [
        (e.name, (e.attributes or {})["spanhook.graph.interrupt.ids"]) for e in span.events
    ] == [("spanhook.graph.interrupt", ("i-1",))]
    assert recorder.names() == ["on_tool_start", "on_tool_error"]
    (record,) = monitor.records()
    assert record.ok and record.error_type is None
