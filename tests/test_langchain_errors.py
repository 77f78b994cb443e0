"""Errors, cancellation and streams of langchain-core runs: ERROR status with one exception
event, ``error.type`` and a short description; every span ended on cancellation; an early
close marked the same way sync and async; time to first chunk and usage on streamed model
spans."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.tools import tool
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from lc_app import ScriptedToolChatModel, build_agent, build_chain
from lc_checks import by_name, run_spans
from spanhook.langchain.tracer import TRACER

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")


class OpenTracker(SpanProcessor):
    """Every span started and not yet ended."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        self.open.pop(span.context.span_id, None)


@pytest.fixture
def tracker(traced: InMemorySpanExporter) -> OpenTracker:
    t = OpenTracker()
    trace.get_tracer_provider().add_span_processor(t)  # type: ignore[attr-defined]
    return t


def _exception_events(span: ReadableSpan) -> int:
    return sum(1 for e in span.events if e.name == "exception")


def _check_error(span: ReadableSpan, error_type: str) -> None:
    assert span.status.status_code == StatusCode.ERROR
    assert _exception_events(span) == 1
    assert span.attributes["error.type"] == error_type
    assert len(span.status.description or "") <= 200


def test_failing_tool_direct_and_in_agent(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    with pytest.raises(RuntimeError):
        tools[1].invoke({"item": "x" * 1000})
    (span,) = traced.get_finished_spans()
    _check_error(span, "RuntimeError")
    assert span.status.description.startswith("RuntimeError: inventory backend down")  # type: ignore[union-attr]
    traced.clear()
    with pytest.raises(RuntimeError):
        build_agent(model, tools).invoke({"messages": [("human", "please fail")]})
    spans = traced.get_finished_spans()
    failed = [s for s in spans if s.status.status_code == StatusCode.ERROR]
    assert {s.name for s in failed} == {
        "execute_tool flaky_inventory",
        "tools",
        "invoke_agent inventory_agent",
    }
    for s in failed:
        _check_error(s, "RuntimeError")


def test_cancelled_agent_task_ends_every_span(
    tracker: OpenTracker,
    traced: InMemorySpanExporter,
    model: ScriptedToolChatModel,
    tools: list[Any],
) -> None:
    agent = build_agent(model, tools)

    async def main() -> None:
        task = asyncio.create_task(agent.ainvoke({"messages": [("human", "slow item")]}))
        await asyncio.sleep(0.4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert tracker.open == {}
    assert TRACER.runs == {}
    spans = run_spans(traced.get_finished_spans())
    failed = [s for s in spans if s.status.status_code == StatusCode.ERROR]
    assert {s.name for s in failed} >= {"execute_tool fetch_data", "invoke_agent inventory_agent"}
    for s in failed:
        _check_error(s, "CancelledError")


def test_cancelled_astream_ends_every_span(
    tracker: OpenTracker, traced: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    chain = build_chain(model.model_copy(update={"chunk_delay": 0.05}))

    async def consume() -> None:
        async for _ in chain.astream({"topic": "cats and dogs and birds"}):
            pass

    async def main() -> None:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.12)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert tracker.open == {}
    assert TRACER.runs == {}
    spans = traced.get_finished_spans()
    _check_error(by_name(spans, "RunnableSequence")[0], "CancelledError")
    for s in spans:
        if s.status.status_code == StatusCode.ERROR:
            _check_error(s, "CancelledError")
    # the model was either inside a step when the task was cancelled (its stream fails with
    # CancelledError) or between two chunks (the cancelled consumer closes its stream)
    chat = by_name(spans, "chat scripted-fake-1")[0]
    if chat.status.status_code != StatusCode.ERROR:
        assert chat.attributes["spanhook.stream.closed_early"] is True


def _closed_early(spans: Any) -> list[str]:
    return sorted(s.name for s in spans if s.attributes.get("spanhook.stream.closed_early"))


@pytest.mark.parametrize("use_async", [False, True])
def test_early_closed_stream_marked_the_same_sync_and_async(
    tracker: OpenTracker,
    traced: InMemorySpanExporter,
    model: ScriptedToolChatModel,
    use_async: bool,
) -> None:
    chain = build_chain(model)
    if use_async:

        async def main() -> None:
            stream = chain.astream({"topic": "cats"})
            await stream.__anext__()
            await stream.aclose()

        asyncio.run(main())
    else:
        stream = chain.stream({"topic": "cats"})
        next(stream)
        stream.close()
    spans = traced.get_finished_spans()
    assert tracker.open == {}
    assert _closed_early(spans) == ["RunnableSequence", "StrOutputParser", "chat scripted-fake-1"]
    for s in spans:
        assert s.status.status_code == StatusCode.UNSET
        assert _exception_events(s) == 0
    chat = by_name(spans, "chat scripted-fake-1")[0]
    assert chat.attributes["gen_ai.response.time_to_first_chunk"] >= 0


def test_model_stream_closed_early_directly(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    stream = model.stream("hello there world")
    next(stream)
    stream.close()
    (span,) = traced.get_finished_spans()
    assert span.attributes["spanhook.stream.closed_early"] is True
    assert span.status.status_code == StatusCode.UNSET


@pytest.mark.parametrize("how", ["stream", "astream", "agent_messages"])
def test_time_to_first_chunk_and_usage_on_every_streamed_model_span(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any], how: str
) -> None:
    if how == "stream":
        list(build_chain(model).stream({"topic": "cats"}))
    elif how == "astream":

        async def main() -> None:
            async for _ in build_chain(model).astream({"topic": "cats"}):
                pass

        asyncio.run(main())
    else:
        list(
            build_agent(model, tools).stream(
                {"messages": [("human", "widgets")]}, stream_mode="messages"
            )
        )
    chats = [s for s in traced.get_finished_spans() if s.name.startswith("chat ")]
    assert chats
    for chat in chats:
        assert chat.attributes["gen_ai.request.stream"] is True
        assert chat.attributes["gen_ai.response.time_to_first_chunk"] >= 0
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0
        assert chat.attributes["gen_ai.usage.output_tokens"] > 0


def test_long_error_message_is_cut_to_200_characters(traced: InMemorySpanExporter) -> None:
    @tool
    def explode(item: str) -> str:
        """Fail with a long message."""
        raise ValueError("boom " * 500)

    with pytest.raises(ValueError):
        explode.invoke({"item": "x"})
    (span,) = traced.get_finished_spans()
    _check_error(span, "ValueError")
    assert len(span.status.description) == 200  # type: ignore[arg-type]
