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
    total = GenerationChunk(text="a") + GenerationChunk(text="b", generation_info={"finish_reason": "stop"})
    assert (total.text, total.generation_info) == ("ab", {"finish_reason": "stop"})
    chat = ChatGenerationChunk(message=AIMessageChunk(content="he")) + ChatGenerationChunk(
        message=AIMessageChunk(content="y", usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3})
    )
    assert chat.text == "hey" and chat.message.usage_metadata == {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}


def test_buffer_string_and_roles() -> None:
    msgs = [SystemMessage(content="be brief"), HumanMessage(content="hi"), ChatMessage(content="x", role="critic")]
    assert get_buffer_string(msgs) == "System: be brief\nHuman: hi\ncritic: x"
    assert message_from_role("assistant", "ok").type == "ai"
    with pytest.raises(ValueError, match="unknown message role 'robot'"):
        message_from_role("robot", "x")


def test_results_dump_like_pydantic_models() -> None:
    result = LLMResult(generations=[[GenerationChunk(text="x")]], llm_output={"token_usage": {"total_tokens": 1}})
    dumped = result.model_dump()
    assert dumped["generations"][0][0]["text"] == "x"
    assert dumped["type"] == "LLMResult" and result.dict() == dumped
