"""Everything spanhook applies to native runs applies unchanged to langchain-core runs:
content policy (off by default, the standard variable both ways, capture_content, redact),
keep_ratio sampling, RunLogFilter, current_run(), spanhook's built-in handlers."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import pytest
from langchain_core.tools import tool
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
import spanhook.langchain
from lc_app import ScriptedToolChatModel, build_agent, build_chain
from spanhook.callbacks import (
    AsyncIteratorCallbackHandler,
    ConsoleCallbackHandler,
    MonitorCallbackHandler,
    RequestLoggerCallbackHandler,
    StdOutCallbackHandler,
    get_usage_callback,
)

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")

CONTENT_KEYS = {
    "spanhook.input",
    "spanhook.output",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}


def _content_spans(exporter: InMemorySpanExporter) -> list[str]:
    return [s.name for s in exporter.get_finished_spans() if CONTENT_KEYS & set(s.attributes or {})]


def _agent_request(model: ScriptedToolChatModel, tools: list[Any]) -> None:
    build_agent(model, tools).invoke({"messages": [("human", "widgets")]})


def test_content_is_off_by_default(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    _agent_request(model, tools)
    assert len(traced.get_finished_spans()) == 16
    assert _content_spans(traced) == []


@pytest.mark.parametrize("value", ["true", "false"])
def test_standard_variable_is_honoured_both_ways(
    monkeypatch: pytest.MonkeyPatch,
    traced: InMemorySpanExporter,
    model: ScriptedToolChatModel,
    tools: list[Any],
    value: str,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    _agent_request(model, tools)
    spans = _content_spans(traced)
    if value == "false":
        assert spans == []
    else:
        assert len(spans) == 15  # every run span, not the httpx one
        chat = next(s for s in traced.get_finished_spans() if s.name.startswith("chat "))
        assert "widgets" in str(chat.attributes["gen_ai.input.messages"])
        tool_span = next(s for s in traced.get_finished_spans() if s.name.startswith("execute"))
        assert "stock" in str(tool_span.attributes["gen_ai.tool.call.result"])


def test_capture_content_block_and_redact_hook(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    spanhook.configure(exporters=[], redact=lambda key, value: "[hidden]")
    with spanhook.capture_content(True):
        build_chain(model).invoke({"topic": "secret plans"})
    spans = traced.get_finished_spans()
    chat = next(s for s in spans if s.name.startswith("chat "))
    assert chat.attributes["gen_ai.input.messages"] == "[hidden]"
    assert "secret" not in str([dict(s.attributes or {}) for s in spans])
    traced.clear()
    build_chain(model).invoke({"topic": "outside the block"})
    assert _content_spans(traced) == []


def test_keep_ratio_keeps_failed_traces_only(
    model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    exporter = InMemorySpanExporter()
    spanhook.configure(exporters=[exporter], keep_ratio=0.0)
    spanhook.langchain.instrument()
    try:
        build_chain(model).invoke({"topic": "fine"})
        with pytest.raises(RuntimeError):
            tools[1].invoke({"item": "x"})
        assert spanhook.force_flush()
    finally:
        spanhook.langchain.uninstrument()
    assert [s.name for s in exporter.get_finished_spans()] == ["execute_tool flaky_inventory"]


def test_run_log_filter_and_current_run_inside_a_langchain_tool(
    traced: InMemorySpanExporter,
) -> None:
    records: list[logging.LogRecord] = []
    seen: dict[str, Any] = {}

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(spanhook.RunLogFilter())
    log = logging.getLogger("lc-app-test")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    @tool
    def lookup(item: str) -> str:
        """Look an item up."""
        seen["run"] = spanhook.current_run()
        log.info("looking up %s", item)
        return item

    try:
        lookup.invoke({"item": "a"}, {"run_id": None})
    finally:
        log.removeHandler(handler)
    (span,) = traced.get_finished_spans()
    run = seen["run"]
    assert run is not None and run.kind == "tool" and run.name == "lookup"
    assert str(run.run_id) == span.attributes["spanhook.run_id"]
    (record,) = records
    assert record.run_id == str(run.run_id)  # type: ignore[attr-defined]
    assert record.span_id == format(span.context.span_id, "016x")  # type: ignore[attr-defined]


def test_spanhook_handlers_in_langchain_callbacks(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    out = io.StringIO()
    console = io.StringIO()
    log_lines = io.StringIO()
    monitor = MonitorCallbackHandler()
    handlers = [
        StdOutCallbackHandler(file=out),
        ConsoleCallbackHandler(stream=console),
        RequestLoggerCallbackHandler(json_stream=log_lines, use_logging=False),
        monitor,
    ]
    with get_usage_callback() as usage:
        build_agent(model, tools).invoke(
            {"messages": [("human", "widgets")]}, {"callbacks": handlers}
        )
    assert "Entering new" in out.getvalue()
    assert "[chain:inventory_agent > chain:tools > tool:fetch_data]" in console.getvalue()
    assert len(log_lines.getvalue().splitlines()) >= 30  # start and end of 15 runs
    assert monitor.report().to_dict()  # measured every run
    assert usage.successful_requests == 2
    assert usage.prompt_tokens == 1 + 5 and usage.completion_tokens == 3 + 8


def test_async_iterator_handler_streams_a_langchain_models_tokens(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    async def main() -> list[str]:
        handler = AsyncIteratorCallbackHandler()
        task = asyncio.ensure_future(
            build_chain(model).ainvoke({"topic": "cats"}, {"callbacks": [handler]})
        )
        tokens = [t async for t in handler.aiter(task)]
        await task
        return tokens

    tokens = asyncio.run(main())
    assert "".join(tokens).startswith("answer to")


def test_websocket_handler_streams_a_langgraph_request(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    from websockets.asyncio.client import connect

    from spanhook.callbacks import WebSocketCallbackHandler
    from test_websocket import WAIT, CollectServer

    agent = build_agent(model, tools)

    async def main(uri: str) -> None:
        async with connect(uri) as ws:
            handler = WebSocketCallbackHandler(ws)
            async for _ in agent.astream(
                {"messages": [("human", "widgets")]},
                {"callbacks": [handler]},
                stream_mode="messages",
            ):
                pass
            assert await handler.aflush(WAIT)

    with CollectServer() as server:
        asyncio.run(main(server.uri))
        messages = server.wait_done()
    kinds = [m["type"] for m in messages]
    assert kinds.count("start") == kinds.count("end") == 15
    assert kinds[-1] == "done"
    assert any(m["type"] == "token" and "answer" in m["token"] for m in messages)
    assert {m["run_id"] for m in messages if m["type"] == "start"} == {
        s.attributes["spanhook.run_id"] for s in traced.get_finished_spans() if s.name != "GET"
    }


def _messages_of(exporter: InMemorySpanExporter, prefix: str) -> list[tuple[Any, Any]]:
    import json

    return [
        (
            json.loads(str(s.attributes["gen_ai.input.messages"])),
            json.loads(str(s.attributes["gen_ai.output.messages"])),
        )
        for s in exporter.get_finished_spans()
        if s.name.startswith(prefix) and s.attributes
    ]


def test_agent_messages_are_recorded_in_the_genai_shape(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    with spanhook.capture_content(True):
        _agent_request(model, tools)
    (first_in, first_out), (second_in, second_out) = _messages_of(traced, "chat ")
    call = {"type": "tool_call", "id": "call_1", "name": "fetch_data"}
    call["arguments"] = {"item": "widgets"}  # type: ignore[assignment]
    user = {"role": "user", "parts": [{"type": "text", "content": "widgets"}]}
    assert first_in == [user]
    assert first_out == [{"role": "assistant", "parts": [call], "finish_reason": "tool_call"}]
    assert [m["role"] for m in second_in] == ["user", "assistant", "tool"]
    assert second_in[1]["parts"] == [call]
    (response,) = second_in[2]["parts"]
    assert (response["type"], response["id"]) == ("tool_call_response", "call_1")
    assert "stock" in str(response["response"])
    assert second_out[0]["finish_reason"] == "stop"


def test_messages_are_recorded_alike_for_native_and_langchain_core_models(
    traced: InMemorySpanExporter,
) -> None:
    from langchain_core.language_models.fake import FakeListLLM as LcLLM
    from langchain_core.language_models.fake_chat_models import FakeListChatModel as LcChat
    from langchain_core.messages import AIMessage as LcAI
    from langchain_core.messages import HumanMessage as LcHuman
    from langchain_core.messages import SystemMessage as LcSystem
    from langchain_core.messages import ToolMessage as LcTool

    from spanhook.chat_models import FakeListChatModel
    from spanhook.llms import FakeListLLM
    from spanhook.schema import AIMessage, HumanMessage, SystemMessage, ToolMessage

    call = {"name": "lookup", "args": {"q": "widgets"}, "id": "c1"}
    native = [
        SystemMessage(content="be brief"),
        HumanMessage(content="widgets?"),
        AIMessage(content="", tool_calls=[call]),
        ToolMessage(content="12 in stock", tool_call_id="c1"),
    ]
    lc = [
        LcSystem("be brief"),
        LcHuman("widgets?"),
        LcAI("", tool_calls=[call]),
        LcTool("12 in stock", tool_call_id="c1"),
    ]
    with spanhook.capture_content(True):
        LcChat(responses=["12"]).invoke(lc)
        LcLLM(responses=["12"]).invoke("widgets?")
        spanhook.langchain.uninstrument()
        FakeListChatModel(responses=["12"]).invoke(native)
        FakeListLLM(responses=["12"]).invoke("widgets?")
    chats = _messages_of(traced, "chat ")
    completions = _messages_of(traced, "text_completion ")
    assert len(chats) == len(completions) == 2
    assert chats[0] == chats[1]
    assert completions[0] == completions[1]
    assert [m["role"] for m in chats[0][0]] == ["system", "user", "assistant", "tool"]


def test_retriever_documents_are_recorded_as_for_a_native_retriever(
    traced: InMemorySpanExporter,
) -> None:
    """A langchain-core retriever's span carries the document entries viewers read
    (``retrieval.documents.N.document.*``), the same as a native retriever's."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document as LcDocument
    from langchain_core.retrievers import BaseRetriever as LcRetriever

    from spanhook.retrievers import InMemoryRetriever
    from spanhook.schema import Document

    meta = {"source": "stock.txt", "score": 0.75}

    class Stock(LcRetriever):
        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[LcDocument]:
            return [LcDocument(page_content="12 widgets", metadata=meta, id="d1")]

    with spanhook.capture_content(True):
        Stock().invoke("widgets")
        spanhook.langchain.uninstrument()
        InMemoryRetriever([Document(page_content="12 widgets", metadata=meta, id="d1")]).invoke(
            "widgets"
        )
    lc, native = (
        {k: v for k, v in (s.attributes or {}).items() if "run_id" not in k and k != "metadata"}
        for s in traced.get_finished_spans()
    )
    assert lc.pop("spanhook.metadata.ls_retriever_name") == "stock"
    assert lc == native
    assert native["retrieval.documents.0.document.score"] == 0.75
