"""Schema objects keep langchain-core's shapes, so existing handlers can read them."""

from __future__ import annotations

import pytest

from spanhook.schema import (
    AIMessageChunk,
    ChatGenerationChunk,
    ChatMessage,
    GenerationChunk,
    HumanMessage,
    LLMResult,
    SystemMessage,
    get_buffer_string,
    message_from_role,
)


def test_chunks_add_up() -> None:
    total = GenerationChunk(text="a") + GenerationChunk(
        text="b", generation_info={"finish_reason": "stop"}
    )
    assert (total.text, total.generation_info) == ("ab", {"finish_reason": "stop"})
    chat = ChatGenerationChunk(message=AIMessageChunk(content="he")) + ChatGenerationChunk(
        message=AIMessageChunk(
            content="y", usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}
        )
    )
    assert chat.text == "hey" and chat.message.usage_metadata == {
        "input_tokens": 1,
        "output_tokens": 2,
        "total_tokens": 3,
    }


def test_buffer_string_and_roles() -> None:
    msgs = [
        SystemMessage(content="be brief"),
        HumanMessage(content="hi"),
        ChatMessage(content="x", role="critic"),
    ]
    assert get_buffer_string(msgs) == "System: be brief\nHuman: hi\ncritic: x"
    assert message_from_role("assistant", "ok").type == "ai"
    with pytest.raises(ValueError, match="unknown message role 'robot'"):
        message_from_role("robot", "x")


def test_results_dump_like_pydantic_models() -> None:
    result = LLMResult(
        generations=[[GenerationChunk(text="x")]], llm_output={"token_usage": {"total_tokens": 1}}
    )
    dumped = result.model_dump()
    assert dumped["generations"][0][0]["text"] == "x"
    assert dumped["type"] == "LLMResult" and result.dict() == dumped


def test_tool_call_chunks_join_by_index_and_parse_into_tool_calls() -> None:
    from spanhook.schema import AIMessageChunk
    from spanhook.schema.messages import tool_calls_from_chunks

    parts = [
        AIMessageChunk(
            content="",
            tool_call_chunks=[
                {"name": "add", "args": "", "id": "c1", "index": 0, "type": "tool_call_chunk"}
            ],
        ),
        AIMessageChunk(
            content="",
            tool_call_chunks=[
                {"name": None, "args": '{"a": ', "id": None, "index": 0, "type": "tool_call_chunk"}
            ],
        ),
        AIMessageChunk(
            content="",
            tool_call_chunks=[
                {"name": "neg", "args": '{"x"', "id": "c2", "index": 1, "type": "tool_call_chunk"}
            ],
        ),
        AIMessageChunk(
            content="",
            tool_call_chunks=[
                {"name": None, "args": "1}", "id": None, "index": 0, "type": "tool_call_chunk"}
            ],
        ),
        AIMessageChunk(
            content="",
            tool_call_chunks=[
                {"name": None, "args": ": 2", "id": None, "index": 1, "type": "tool_call_chunk"}
            ],
        ),
    ]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    assert [(c["name"], c["args"], c["id"], c["index"]) for c in total.tool_call_chunks] == [
        ("add", '{"a": 1}', "c1", 0),
        ("neg", '{"x": 2', "c2", 1),
    ]
    assert parts[0].tool_call_chunks[0]["args"] == ""  # adding never mutates the parts
    calls = tool_calls_from_chunks(total.tool_call_chunks)
    assert calls[0] == {"name": "add", "args": {"a": 1}, "id": "c1", "type": "tool_call"}
    assert calls[1]["args"] == {"__raw__": '{"x": 2'}  # cut-off JSON is kept, not lost
