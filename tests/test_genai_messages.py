"""Message content on model spans follows the GenAI semantic conventions, validated against
the conventions' published JSON schemas (``tests/fixtures/gen-ai-input-messages.json`` from
open-telemetry/semantic-conventions ``docs/gen-ai/gen-ai-input-messages.json`` at commit
095a2a1979eb50e5fce8bf583e27d6f65f9f0f74, ``tests/fixtures/gen-ai-output-messages.json``
from ``docs/gen-ai/gen-ai-output-messages.json`` at 104713c0c13deec5489b72ae0bf25dffdaa60343):
assistant turns that call tools carry ``tool_call`` parts (id, name, arguments), tool messages
``tool_call_response`` parts (id, response), output messages a ``finish_reason``.

The model is the real ``ChatOpenAI`` over the real openai SDK against the OpenAI-compatible
server of ``tests/openai_server.py`` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from openai_server import OpenAIServer, Text, ToolCall
from spanhook.agents import calculator_tool
from spanhook.chat_models import ChatOpenAI, FakeListChatModel
from spanhook.llms import OfflineLLM
from spanhook.schema import AIMessage, HumanMessage, SystemMessage, ToolMessage, genai
from spanhook.tracing import attributes as attr

FIXTURES = Path(__file__).parent / "fixtures"
INPUT_SCHEMA = json.loads((FIXTURES / "gen-ai-input-messages.json").read_text())
OUTPUT_SCHEMA = json.loads((FIXTURES / "gen-ai-output-messages.json").read_text())
CALL = {"name": "calculator", "args": {"expression": "2 + 3"}, "id": "call_7", "type": "tool_call"}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as s:
        yield s


@pytest.fixture
def captured(memory_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    spanhook.configure(exporters="none", capture_content=True)
    return memory_exporter


def _messages(exporter: InMemorySpanExporter) -> tuple[Any, Any]:
    (span,) = exporter.get_finished_spans()
    a = span.attributes or {}
    inputs = json.loads(str(a[attr.GEN_AI_INPUT_MESSAGES]))
    outputs = json.loads(str(a[attr.GEN_AI_OUTPUT_MESSAGES]))
    jsonschema.validate(inputs, INPUT_SCHEMA)
    jsonschema.validate(outputs, OUTPUT_SCHEMA)
    return inputs, outputs


def _model(server: OpenAIServer, **kw: Any) -> ChatOpenAI:
    return ChatOpenAI(
        "test-model",
        base_url=server.url,
        api_key="k",
        max_retries=0,
        tools=[calculator_tool()],
        **kw,
    )


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "invoke(streaming)"])
def test_a_tool_calling_answer_is_recorded_as_tool_call_parts(
    server: OpenAIServer, captured: InMemorySpanExporter, how: str
) -> None:
    server.script(
        ToolCall(name="calculator", arguments='{"expression": "2 + 3"}', call_id="call_7")
    )
    if how == "invoke":
        _model(server).invoke("what is 2 + 3?")
    elif how == "ainvoke":
        asyncio.run(_model(server).ainvoke("what is 2 + 3?"))
    elif how == "stream":
        list(_model(server).stream("what is 2 + 3?"))
    else:
        _model(server, streaming=True).invoke("what is 2 + 3?")
    inputs, outputs = _messages(captured)
    assert inputs == [{"role": "user", "parts": [{"type": "text", "content": "what is 2 + 3?"}]}]
    assert outputs == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_7",
                    "name": "calculator",
                    "arguments": {"expression": "2 + 3"},
                }
            ],
            "finish_reason": "tool_call",
        }
    ]


def test_a_conversation_with_a_tool_round_trip_is_recorded_part_by_part(
    server: OpenAIServer, captured: InMemorySpanExporter
) -> None:
    server.script(Text("2 + 3 is 5."))
    conversation = [
        SystemMessage(content="You can compute."),
        HumanMessage(content="what is 2 + 3?"),
        AIMessage(content="", tool_calls=[CALL]),
        ToolMessage(content="5", tool_call_id="call_7"),
    ]
    _model(server).invoke(conversation)
    inputs, outputs = _messages(captured)
    assert inputs == [
        {"role": "system", "parts": [{"type": "text", "content": "You can compute."}]},
        {"role": "user", "parts": [{"type": "text", "content": "what is 2 + 3?"}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_7",
                    "name": "calculator",
                    "arguments": {"expression": "2 + 3"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_7", "response": "5"}],
        },
    ]
    assert outputs == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "2 + 3 is 5."}],
            "finish_reason": "stop",
        }
    ]
    # the server got the same conversation: the tool call and its answer, linked by id
    sent = server.requests[0].body["messages"]
    assert sent[2]["tool_calls"][0]["id"] == "call_7"
    assert sent[3] == {"role": "tool", "content": "5", "tool_call_id": "call_7"}


def test_assistant_text_with_tool_calls_keeps_both(captured: InMemorySpanExporter) -> None:
    FakeListChatModel(["ok"]).invoke(
        [HumanMessage(content="go"), AIMessage(content="Let me compute.", tool_calls=[CALL])]
    )
    inputs, _ = _messages(captured)
    assert [p["type"] for p in inputs[1]["parts"]] == ["text", "tool_call"]


def test_text_completion_messages_follow_the_conventions(captured: InMemorySpanExporter) -> None:
    OfflineLLM().invoke("2 + 2 = ")
    inputs, outputs = _messages(captured)
    assert inputs == [{"role": "user", "parts": [{"type": "text", "content": "2 + 2 = "}]}]
    assert outputs == [
        {"role": "assistant", "parts": [{"type": "text", "content": "4"}], "finish_reason": "stop"}
    ]


def test_langchain_core_messages_follow_the_conventions(captured: InMemorySpanExporter) -> None:
    """A langchain-core model under ``spanhook.langchain`` records the same shapes: roles of
    the conventions, a tool round trip part by part, content blocks as parts."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel as LcChat
    from langchain_core.messages import AIMessage as LcAI
    from langchain_core.messages import HumanMessage as LcHuman
    from langchain_core.messages import ToolMessage as LcTool

    import spanhook.langchain

    blocks: list[Any] = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    spanhook.langchain.instrument()
    try:
        LcChat(responses=["5"]).invoke(
            [LcHuman(blocks), LcAI("", tool_calls=[CALL]), LcTool("5", tool_call_id="call_7")]
        )
    finally:
        spanhook.langchain.uninstrument()
    inputs, outputs = _messages(captured)
    assert [m["role"] for m in inputs] == ["user", "assistant", "tool"]
    assert inputs[0]["parts"] == [
        {"type": "text", "content": "what is this?"},
        blocks[1],
    ]
    assert inputs[1]["parts"] == [
        {"type": "tool_call", "id": "call_7", "name": "calculator", "arguments": CALL["args"]}
    ]
    assert inputs[2]["parts"] == [{"type": "tool_call_response", "id": "call_7", "response": "5"}]
    assert outputs == [
        {"role": "assistant", "parts": [{"type": "text", "content": "5"}], "finish_reason": "stop"}
    ]
    untyped = genai.input_message(LcHuman([{"no": "type"}]))  # a block naming no type is text
    assert untyped["parts"] == [{"type": "text", "content": {"no": "type"}}]
    jsonschema.validate([untyped], INPUT_SCHEMA)


def test_the_schemas_reject_what_the_conventions_do_not_allow() -> None:
    """The fixtures are the real schemas: a message without parts, or an output message
    without a finish reason, fails validation."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"role": "user"}], INPUT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"role": "assistant", "parts": []}], OUTPUT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            [{"role": "user", "parts": [{"type": "tool_call_response", "id": "x"}]}],
            {**INPUT_SCHEMA, "$defs": {**INPUT_SCHEMA["$defs"], "GenericPart": False}},
        )
