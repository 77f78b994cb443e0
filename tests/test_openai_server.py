"""The test OpenAI server (tests/openai_server.py) against the real openai SDK, over a socket."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from openai_server import Broken, Error, Hang, OpenAIServer, Text, ToolCall

MODEL = "gpt-4o-mini"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def client(server: OpenAIServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="sk-test-123", **kwargs)


def test_chat_non_stream_answer_and_usage(server: OpenAIServer) -> None:
    server.script(Text("Paris is the capital", prompt_tokens=11))
    resp = client(server).chat.completions.create(model=MODEL, messages=USER, temperature=0.2)

    assert resp.id == "chatcmpl-test-1"
    assert resp.object == "chat.completion"
    assert resp.model == MODEL
    assert isinstance(resp.created, int)
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "Paris is the capital"
    assert resp.choices[0].message.tool_calls is None
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (11, 4)
    assert resp.usage.total_tokens == 15


def test_chat_default_reply_echoes_last_user_message(server: OpenAIServer) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second question"},
    ]
    resp = client(server).chat.completions.create(model="other-model", messages=messages)
    assert resp.choices[0].message.content == "echo: second question"
    assert resp.model == "other-model"
    assert server.pending == 0


def test_chat_stream_pieces_in_order_without_usage(server: OpenAIServer) -> None:
    server.script(Text("one two three", model="served-model"))
    stream = client(server).chat.completions.create(model=MODEL, messages=USER, stream=True)
    chunks = list(stream)

    assert [c.object for c in chunks] == ["chat.completion.chunk"] * len(chunks)
    assert {c.id for c in chunks} == {"chatcmpl-test-1"}
    assert {c.model for c in chunks} == {"served-model"}
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks[1:] if c.choices[0].delta.content]
    assert pieces == ["one ", "two ", "three"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # no usage-only chunk


def test_chat_stream_usage_chunk_only_with_include_usage(server: OpenAIServer) -> None:
    server.script(Text("a b c", chunks=["a b", " c"], completion_tokens=9))
    stream = client(server).chat.completions.create(
        model=MODEL, messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    contents = [c.choices[0].delta.content for c in chunks if c.choices]
    assert contents == ["", "a b", " c", None]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        7,
        9,
        16,
    )
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_chat_stream_is_incremental(server: OpenAIServer) -> None:
    """Each event is flushed: the first piece arrives long before the last one is sent."""
    server.script(Text("x y z", chunk_delay=0.15))
    t0 = time.monotonic()
    stream = client(server).chat.completions.create(model=MODEL, messages=USER, stream=True)
    arrivals: list[tuple[str, float]] = []
    for chunk in stream:
        if chunk.choices[0].delta.content:
            arrivals.append((chunk.choices[0].delta.content, time.monotonic() - t0))
    assert [piece for piece, _ in arrivals] == ["x ", "y ", "z"]
    assert arrivals[-1][1] - arrivals[0][1] >= 0.25
    assert arrivals[0][1] < arrivals[-1][1] - 0.2


def test_tool_call_non_stream(server: OpenAIServer) -> None:
    args = json.dumps({"city": "Paris", "unit": "c"})
    server.script(ToolCall("get_weather", args, call_id="call_abc"))
    tools: list[ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    ]
    resp = client(server).chat.completions.create(model=MODEL, messages=USER, tools=tools)

    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert (call.id, call.type) == ("call_abc", "function")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "c"}
    assert resp.usage is not None and resp.usage.completion_tokens == 5
    assert server.requests[-1].body["tools"] == tools


def test_tool_call_stream_deltas_reassemble(server: OpenAIServer) -> None:
    args = json.dumps({"query": "spanhook tracing", "limit": 3})
    server.script(ToolCall("search", args))
    stream = client(server).chat.completions.create(
        model=MODEL, messages=USER, stream=True, stream_options={"include_usage": True}
    )
    name = call_id = None
    fragments: list[str] = []
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or []:
            assert tc.index == 0
            call_id = tc.id or call_id
            if tc.function is not None:
                name = tc.function.name or name
                if tc.function.arguments:
                    fragments.append(tc.function.arguments)
        finish = chunk.choices[0].finish_reason or finish

    assert (call_id, name, finish) == ("call_1", "search", "tool_calls")
    assert len(fragments) == 3
    assert "".join(fragments) == args
    assert usage is not None and usage.total_tokens == 12


def test_tool_call_custom_arg_chunks(server: OpenAIServer) -> None:
    server.script(ToolCall("f", '{"a": 1}', arg_chunks=['{"a"', ": 1}"]))
    stream = client(server).chat.completions.create(model=MODEL, messages=USER, stream=True)
    fragments = [
        tc.function.arguments
        for c in stream
        for tc in (c.choices[0].delta.tool_calls or [])
        if tc.function is not None and tc.function.arguments
    ]
    assert fragments == ['{"a"', ": 1}"]


def test_legacy_completion_non_stream(server: OpenAIServer) -> None:
    server.script(Text("the end", finish_reason="length"))
    resp = client(server).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Once upon", max_tokens=2, stop=["\n"]
    )
    assert resp.id == "cmpl-test-1"
    assert resp.object == "text_completion"
    assert resp.model == "gpt-3.5-turbo-instruct"
    assert resp.choices[0].text == "the end"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.total_tokens == 9
    assert server.requests[-1].body["stop"] == ["\n"]

    default = client(server).completions.create(model="m", prompt=["first prompt", "second"])
    assert default.choices[0].text == "echo: first prompt"


def test_legacy_completion_stream(server: OpenAIServer) -> None:
    server.script(Text("alpha beta"), Text("gamma"))
    c = client(server)
    chunks = list(c.completions.create(model="m", prompt="p", stream=True))
    assert [ch.choices[0].text for ch in chunks] == ["alpha ", "beta", ""]
    assert [ch.choices[0].finish_reason for ch in chunks] == [None, None, "stop"]
    assert all(ch.usage is None for ch in chunks)

    with_usage = list(
        c.completions.create(
            model="m", prompt="p", stream=True, stream_options={"include_usage": True}
        )
    )
    assert [ch.choices[0].text for ch in with_usage[:-1]] == ["gamma", ""]
    assert with_usage[-1].choices == []
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == 1


def test_legacy_completion_rejects_tool_call(server: OpenAIServer) -> None:
    server.script(ToolCall("f", "{}"))
    with pytest.raises(openai.BadRequestError) as info:
        client(server, max_retries=0).completions.create(model="m", prompt="p")
    assert info.value.status_code == 400


def test_error_500_without_retries(server: OpenAIServer) -> None:
    server.script(Error(500, message="kaput"))
    with pytest.raises(openai.InternalServerError) as info:
        client(server, max_retries=0).chat.completions.create(model=MODEL, messages=USER)
    assert info.value.status_code == 500
    assert "kaput" in str(info.value)
    assert info.value.body == {
        "message": "kaput",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert len(server.requests) == 1


def test_error_429_then_success_with_one_retry(server: OpenAIServer) -> None:
    server.script(
        Error(429, message="slow down", type="rate_limit_error", retry_after=0.01), Text("ok")
    )
    resp = client(server, max_retries=1).chat.completions.create(model=MODEL, messages=USER)
    assert resp.choices[0].message.content == "ok"
    assert len(server.requests) == 2
    assert server.requests[0].body == server.requests[1].body
    assert server.requests[1].headers.get("x-stainless-retry-count") == "1"


def test_error_429_exhausts_retries(server: OpenAIServer) -> None:
    server.script(Error(429, type="rate_limit_error", retry_after=0.01))
    with pytest.raises(openai.RateLimitError):
        client(server, max_retries=0).chat.completions.create(model=MODEL, messages=USER)


def test_hang_triggers_client_timeout(server: OpenAIServer) -> None:
    server.script(Hang(2.0))
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client(server, timeout=0.3, max_retries=0).chat.completions.create(
            model=MODEL, messages=USER
        )
    assert time.monotonic() - t0 < 1.5


def test_hang_does_not_block_shutdown() -> None:
    srv = OpenAIServer().__enter__()
    srv.script(Hang(30))
    with pytest.raises(openai.APITimeoutError):
        client(srv, timeout=0.2, max_retries=0).chat.completions.create(model=MODEL, messages=USER)
    t0 = time.monotonic()
    srv.__exit__(None, None, None)
    assert time.monotonic() - t0 < 1.0


def test_missing_auth_gets_401(server: OpenAIServer) -> None:
    server.script(Text("never sent"))
    req = urllib.request.Request(
        server.url + "/chat/completions",
        data=json.dumps({"model": MODEL, "messages": USER}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 401
    body = json.loads(info.value.read())
    assert body["error"]["type"] == "invalid_request_error"
    assert server.pending == 1  # the 401 did not consume the scripted reply
    assert "authorization" not in server.requests[-1].headers


def test_auth_error_via_sdk_without_bearer(server: OpenAIServer) -> None:
    server.script(Text("never sent"))
    c = client(server, max_retries=0, default_headers={"Authorization": "Basic abc"})
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model=MODEL, messages=USER)
    assert server.pending == 1  # the 401 did not consume the scripted reply


def _raw_post(server: OpenAIServer, path: str, data: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        server.url + path,
        data=data,
        headers={"Authorization": "Bearer sk-test-123", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_malformed_json_and_unknown_path(server: OpenAIServer) -> None:
    status, body = _raw_post(server, "/chat/completions", b"{not json")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"

    status, body = _raw_post(server, "/embeddings", b"{}")
    assert status == 404
    assert set(body["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.NotFoundError):
        client(server, max_retries=0).models.list()


def test_broken_stream_raises_from_iterator(server: OpenAIServer) -> None:
    server.script(Broken())
    stream = client(server, max_retries=0).chat.completions.create(
        model=MODEL, messages=USER, stream=True
    )
    received: list[str | None] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["partial"]


def test_broken_non_stream_raises(server: OpenAIServer) -> None:
    server.script(Broken())
    with pytest.raises(openai.APIConnectionError):
        client(server, max_retries=0).chat.completions.create(model=MODEL, messages=USER)
    # The server keeps serving afterwards.
    ok = client(server).chat.completions.create(model=MODEL, messages=USER)
    assert ok.choices[0].message.content == "echo: hello there"


def test_requests_are_recorded(server: OpenAIServer) -> None:
    c = client(server)
    c.chat.completions.create(model=MODEL, messages=USER, max_tokens=12)
    c.completions.create(model="m", prompt="p", temperature=0.5)

    assert [r.path for r in server.requests] == ["/v1/chat/completions", "/v1/completions"]
    first, second = server.requests
    assert first.headers["authorization"] == "Bearer sk-test-123"
    assert first.headers["content-type"] == "application/json"
    assert first.body == {"model": MODEL, "messages": USER, "max_tokens": 12}
    assert second.body == {"model": "m", "prompt": "p", "temperature": 0.5}


def test_async_client_streaming(server: OpenAIServer) -> None:
    server.script(Text("async works fine"))

    async def run() -> tuple[list[str], int]:
        async with openai.AsyncOpenAI(base_url=server.url, api_key="sk-test-123") as ac:
            stream = await ac.chat.completions.create(
                model=MODEL, messages=USER, stream=True, stream_options={"include_usage": True}
            )
            pieces: list[str] = []
            total = 0
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                if chunk.usage is not None:
                    total = chunk.usage.total_tokens
            return pieces, total

    pieces, total = asyncio.run(run())
    assert pieces == ["async ", "works ", "fine"]
    assert total == 10
    assert server.requests[-1].body["stream"] is True
