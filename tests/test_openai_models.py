"""``ChatOpenAI`` and ``OpenAI`` against a real OpenAI-compatible HTTP server on 127.0.0.1,
through the real ``openai`` SDK: handler events and arguments, GenAI span attributes,
streaming (tokens before chunks, usage, tool-call deltas), retries, errors, async, threads,
and that the API key never reaches a span or a handler."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from helpers import AsyncRecorder, Recorder
from instrumented_openai_app import run_app
from openai_server import Broken, Error, Hang, OpenAIServer, Text, ToolCall
from spanhook.agents import calculator_tool
from spanhook.callbacks import BaseCallbackHandler, StdOutCallbackHandler
from spanhook.chains import LLMChain
from spanhook.chat_models import ChatOpenAI
from spanhook.llms import OpenAI
from spanhook.prompts import PromptTemplate
from spanhook.schema import HumanMessage, LLMResult, SystemMessage
from spanhook.tracing.settings import TracingSettings, set_settings

SECRET = "sk-test-very-secret-key-0123456789"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as s:
        yield s


def chat(server: OpenAIServer, **kw: Any) -> ChatOpenAI:
    kw.setdefault("max_retries", 0)
    return ChatOpenAI(kw.pop("model", "test-model"), base_url=server.url, api_key=SECRET, **kw)


def completion_llm(server: OpenAIServer, **kw: Any) -> OpenAI:
    kw.setdefault("max_retries", 0)
    return OpenAI(base_url=server.url, api_key=SECRET, **kw)


def assert_no_secret(exporter: InMemorySpanExporter, *recorders: Any) -> None:
    for span in exporter.get_finished_spans():
        assert SECRET not in json.dumps({k: str(v) for k, v in (span.attributes or {}).items()})
        for event in span.events:
            assert SECRET not in str(dict(event.attributes or {}))
    for rec in recorders:
        assert SECRET not in repr(rec.events)


# -- chat: whole answers ---------------------------------------------------------------------


def test_chat_invoke_calls_handlers_with_langchain_arguments_and_records_a_genai_span(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    server.script(
        Text(
            "Paris is the capital.",
            prompt_tokens=11,
            model="test-model-2024",
            response_id="chatcmpl-abc",
        )
    )
    rec = Recorder()
    model = chat(server, temperature=0.2, max_tokens=50)

    answer = model.invoke(
        [SystemMessage(content="Be brief."), HumanMessage(content="Capital of France?")],
        callbacks=[rec],
    )

    assert answer.content == "Paris is the capital."
    assert answer.usage_metadata == {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15}
    assert rec.names() == ["on_chat_model_start", "on_llm_end"]
    start = rec.of("on_chat_model_start")[0]
    serialized, messages = start.args
    assert serialized["kwargs"]["model_name"] == "test-model"
    assert [m.content for m in messages[0]] == ["Be brief.", "Capital of France?"]
    params = start.kwargs["invocation_params"]
    assert (
        params["model"] == "test-model"
        and params["temperature"] == 0.2
        and params["_type"] == "openai-chat"
    )
    result = rec.of("on_llm_end")[0].args[0]
    assert isinstance(result, LLMResult)
    assert result.llm_output == {
        "model_name": "test-model-2024",
        "id": "chatcmpl-abc",
        "token_usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
    }

    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body["model"] == "test-model"
    assert request.body["temperature"] == 0.2 and request.body["max_tokens"] == 50
    assert [m["role"] for m in request.body["messages"]] == ["system", "user"]
    assert "stream" not in request.body

    (span,) = memory_exporter.get_finished_spans()
    a = span.attributes or {}
    assert span.name == "chat test-model" and span.kind is SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert (
        a["gen_ai.request.model"] == "test-model"
        and a["gen_ai.response.model"] == "test-model-2024"
    )
    assert a["gen_ai.response.id"] == "chatcmpl-abc"
    assert a["gen_ai.usage.input_tokens"] == 11 and a["gen_ai.usage.output_tokens"] == 4
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.request.temperature"] == 0.2 and a["gen_ai.request.max_tokens"] == 50
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == server.port
    assert a["spanhook.run_id"] == str(start.run_id)
    assert_no_secret(memory_exporter, rec)


def test_chat_content_is_on_the_span_only_when_capture_is_on(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    model = chat(server)
    model.invoke("hello")
    set_settings(TracingSettings(capture_content=True))
    model.invoke("again")
    off, on = memory_exporter.get_finished_spans()
    assert "gen_ai.input.messages" not in (off.attributes or {})
    assert (
        json.loads(str((on.attributes or {})["gen_ai.input.messages"]))[0]["parts"][0]["content"]
        == "again"
    )
    assert "echo: again" in str((on.attributes or {})["gen_ai.output.messages"])
    assert_no_secret(memory_exporter)


def test_chat_tool_call_answer_is_parsed_into_tool_calls(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    server.script(
        ToolCall(name="calculator", arguments='{"expression": "2 + 3"}', call_id="call_7")
    )
    model = chat(server, tools=[calculator_tool()])

    answer = model.invoke("what is 2 + 3?")

    assert answer.tool_calls == [
        {"name": "calculator", "args": {"expression": "2 + 3"}, "id": "call_7", "type": "tool_call"}
    ]
    (tool,) = server.requests[0].body["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == "calculator"
    assert tool["function"]["parameters"]["properties"] == {"expression": {"type": "string"}}
    assert tool["function"]["parameters"]["required"] == ["expression"]
    (span,) = memory_exporter.get_finished_spans()
    assert (span.attributes or {})["gen_ai.response.finish_reasons"] == ("tool_calls",)


def test_tool_calls_and_results_go_back_to_the_server_in_openai_shape(server: OpenAIServer) -> None:
    from spanhook.schema import AIMessage, ToolMessage

    model = chat(server)
    model.invoke(
        [
            HumanMessage(content="2 + 3?"),
            AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": "calculator",
                        "args": {"expression": "2 + 3"},
                        "id": "call_1",
                        "type": "tool_call",
                    }
                ],
            ),
            ToolMessage(content="5", tool_call_id="call_1"),
        ]
    )
    sent = server.requests[0].body["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["content"] is None
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "calculator",
        "arguments": '{"expression": "2 + 3"}',
    }
    assert sent[2] == {"role": "tool", "content": "5", "tool_call_id": "call_1"}


# -- chat: streaming ---------------------------------------------------------------------


class OrderLog(BaseCallbackHandler):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.log.append(f"token:{token}")


def test_stream_delivers_each_token_before_its_chunk_and_counts_usage(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    server.script(Text("one two three", chunks=["one ", "two ", "three"], prompt_tokens=5))
    log: list[str] = []
    rec = Recorder()
    model = chat(server)

    for chunk in model.stream("count", callbacks=[OrderLog(log), rec]):
        log.append(f"chunk:{chunk.content}")

    content = [e for e in log if e not in ("token:", "chunk:")]
    assert content == [
        "token:one ",
        "chunk:one ",
        "token:two ",
        "chunk:two ",
        "token:three",
        "chunk:three",
    ]
    # every token callback comes right before the chunk it announces, empty ones included
    assert all(
        log[i].startswith("token:") and log[i + 1] == "chunk:" + log[i][6:]
        for i in range(0, len(log), 2)
    )
    assert server.requests[0].body["stream"] is True
    assert server.requests[0].body["stream_options"] == {"include_usage": True}
    result = rec.of("on_llm_end")[0].args[0]
    assert result.generations[0][0].text == "one two three"
    assert result.llm_output["token_usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "total_tokens": 8,
    }
    (span,) = memory_exporter.get_finished_spans()
    a = span.attributes or {}
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.usage.input_tokens"] == 5 and a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.response.id"] == "chatcmpl-test-1"
    assert "gen_ai.response.time_to_first_chunk" in a
    assert_no_secret(memory_exporter, rec)


def test_stream_usage_can_be_turned_off(server: OpenAIServer) -> None:
    rec = Recorder()
    "".join(c.content for c in chat(server, stream_usage=False).stream("hi", callbacks=[rec]))
    assert "stream_options" not in server.requests[0].body
    assert "token_usage" not in (rec.of("on_llm_end")[0].args[0].llm_output or {})


def test_tool_call_argument_deltas_reach_on_llm_new_token(server: OpenAIServer) -> None:
    arguments = '{"expression": "12 * 7"}'
    server.script(
        ToolCall(
            name="calculator", arguments=arguments, arg_chunks=['{"expre', 'ssion": "12', ' * 7"}']
        )
    )
    rec = Recorder()
    model = chat(server, streaming=True, tools=[calculator_tool()])

    answer = model.invoke("12 * 7?", callbacks=[rec])

    deltas = [
        c for e in rec.of("on_llm_new_token") for c in e.kwargs["chunk"].message.tool_call_chunks
    ]
    assert [d["args"] for d in deltas] == ["", '{"expre', 'ssion": "12', ' * 7"}']
    assert deltas[0]["name"] == "calculator" and deltas[0]["id"] == "call_1"
    assert "".join(d["args"] for d in deltas) == arguments
    assert answer.tool_calls == [
        {
            "name": "calculator",
            "args": {"expression": "12 * 7"},
            "id": "call_1",
            "type": "tool_call",
        }
    ]
    final = rec.of("on_llm_end")[0].args[0].generations[0][0]
    assert final.message.tool_calls == answer.tool_calls
    assert final.generation_info == {"finish_reason": "tool_calls"}


def test_a_stream_broken_mid_way_ends_the_run_once_with_an_error(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    server.script(Broken())
    rec = Recorder()
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError) as info:
        for chunk in chat(server).stream("hi", callbacks=[rec]):
            received.append(chunk.content)
    assert "partial" in received
    assert rec.names().count("on_llm_error") == 1 and "on_llm_end" not in rec.names()
    error = rec.of("on_llm_error")[0]
    assert error.args[0] is info.value
    assert error.kwargs["response"].generations[0][0].text == "partial"  # what arrived is not lost
    (span,) = memory_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events].count("exception") == 1


# -- retries and errors ---------------------------------------------------------------------


def test_retryable_errors_are_retried_inside_the_run_and_reported(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    server.script(
        Error(503, "overloaded"), Error(429, "slow down", type="rate_limit_error"), Text("finally")
    )
    rec = Recorder()

    answer = chat(server, max_retries=2, retry_delay=0).invoke("hi", callbacks=[rec])

    assert answer.content == "finally"
    assert rec.names() == ["on_chat_model_start", "on_retry", "on_retry", "on_llm_end"]
    errors = [e.args[0].outcome_error for e in rec.of("on_retry")]
    assert isinstance(errors[0], openai.InternalServerError) and isinstance(
        errors[1], openai.RateLimitError
    )
    assert len(server.requests) == 3
    (span,) = memory_exporter.get_finished_spans()
    retries = [e for e in span.events if e.name == "spanhook.retry"]
    assert [dict(e.attributes or {})["spanhook.retry.attempt"] for e in retries] == [1, 2]
    assert span.status.status_code is StatusCode.UNSET


def test_a_rejected_request_is_not_retried(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    server.script(Error(400, "bad model", type="invalid_request_error"))
    rec = Recorder()
    with pytest.raises(openai.BadRequestError):
        chat(server, max_retries=3, retry_delay=0).invoke("hi", callbacks=[rec])
    assert len(server.requests) == 1
    assert rec.names() == ["on_chat_model_start", "on_llm_error"]
    (span,) = memory_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "BadRequestError"


def test_a_hanging_server_times_out_into_on_llm_error(server: OpenAIServer) -> None:
    server.script(Hang(3.0))
    rec = Recorder()
    with pytest.raises(openai.APITimeoutError):
        chat(server, timeout=0.3).invoke("hi", callbacks=[rec])
    assert rec.names() == ["on_chat_model_start", "on_llm_error"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": ""}, "model must be a non-empty string"),
        ({"temperature": 5}, "temperature must be between 0 and 2"),
        ({"max_tokens": 0}, "max_tokens must be a positive int"),
        ({"base_url": "ftp://example.invalid"}, "base_url must be an http(s) URL"),
        ({"timeout": -1}, "timeout must be a positive number"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], message: str) -> None:
    kw = {"api_key": SECRET, "base_url": "http://127.0.0.1:9/v1", **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        ChatOpenAI(kw.pop("model", "m"), **kw)


def test_a_missing_api_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        ChatOpenAI("m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(TypeError, match="spanhook Tool objects or OpenAI tool dicts"):
        ChatOpenAI("m", api_key=SECRET, base_url="http://127.0.0.1:9/v1", tools=[42])


def test_api_key_and_base_url_come_from_the_environment(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    assert ChatOpenAI("m", max_retries=0).invoke("hi").content == "echo: hi"
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env"


# -- async and threads ---------------------------------------------------------------------


def test_async_invoke_and_stream_with_an_async_handler(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    server.script(Text("alpha"), Text("beta gamma", chunks=["beta ", "gamma"]))
    rec = AsyncRecorder()
    model = chat(server)

    async def main() -> tuple[str, list[str]]:
        whole = await model.ainvoke("a", callbacks=[rec])
        parts = [c.content async for c in model.astream("b", callbacks=[rec])]
        return whole.content, parts

    whole, parts = asyncio.run(main())
    assert whole == "alpha"
    assert "".join(parts) == "beta gamma" and "beta " in parts and "gamma" in parts
    assert rec.names().count("on_chat_model_start") == 2 and rec.names().count("on_llm_end") == 2
    tokens = [e.kwargs["token"] for e in rec.events if e.event == "on_llm_new_token"]
    assert "".join(tokens) == "beta gamma"
    spans = memory_exporter.get_finished_spans()
    assert [(s.attributes or {})["gen_ai.request.stream"] for s in spans] == [False, True]
    assert (spans[1].attributes or {})["gen_ai.usage.output_tokens"] == 2


def test_batch_runs_calls_in_threads_each_its_own_span(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    rec = Recorder()
    answers = chat(server).batch(["a", "b", "c", "d"], callbacks=[rec])
    assert [m.content for m in answers] == ["echo: a", "echo: b", "echo: c", "echo: d"]
    spans = memory_exporter.get_finished_spans()
    assert len(spans) == 4 and len({s.context.span_id for s in spans}) == 4
    assert len(rec.run_ids()) == 4 and len(server.requests) == 4


# -- the completions model ---------------------------------------------------------------------


def test_the_seed_example_runs_with_openai_against_a_compatible_server(
    server: OpenAIServer,
    memory_exporter: InMemorySpanExporter,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    server.script(Text("3", model="instruct-model"))
    llm = completion_llm(server)
    prompt = PromptTemplate.from_template("1 + {number} = ")

    answer = LLMChain(llm=llm, prompt=prompt, callbacks=[StdOutCallbackHandler()]).run(number=2)

    assert answer == "3"
    out = capsys.readouterr().out
    assert (
        "> Entering new LLMChain chain...\nPrompt after formatting:\n1 + 2 = \n\n> Finished chain.\n"
        in out
    )
    (request,) = server.requests
    assert request.path == "/v1/completions" and request.body["prompt"] == "1 + 2 = "
    llm_span, chain_span = memory_exporter.get_finished_spans()
    assert (
        llm_span.name == "text_completion gpt-3.5-turbo-instruct"
        and llm_span.kind is SpanKind.CLIENT
    )
    assert llm_span.parent is not None and llm_span.parent.span_id == chain_span.context.span_id
    a = llm_span.attributes or {}
    assert a["gen_ai.response.model"] == "instruct-model" and a["gen_ai.usage.input_tokens"] == 7
    assert_no_secret(memory_exporter)


def test_completion_streaming_reports_tokens_usage_and_finish_reason(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    server.script(Text("four five six", finish_reason="length", prompt_tokens=3))
    rec = Recorder()
    text = completion_llm(server, streaming=True, max_tokens=3).invoke("count on", callbacks=[rec])
    assert text == "four five six"
    tokens = [e.kwargs["token"] for e in rec.of("on_llm_new_token")]
    assert "".join(tokens) == "four five six" and len([t for t in tokens if t]) == 3
    result = rec.of("on_llm_end")[0].args[0]
    assert result.generations[0][0].generation_info == {"finish_reason": "length"}
    assert result.llm_output["token_usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 3,
        "total_tokens": 6,
    }
    (span,) = memory_exporter.get_finished_spans()
    assert (
        result.llm_output["id"]
        and (span.attributes or {})["gen_ai.response.id"] == result.llm_output["id"]
    )
    assert (span.attributes or {})["gen_ai.response.finish_reasons"] == ("length",)
    assert (span.attributes or {})["gen_ai.usage.output_tokens"] == 3


def test_completion_async_generate(server: OpenAIServer) -> None:
    rec = AsyncRecorder()
    llm = completion_llm(server)
    result = asyncio.run(llm.agenerate(["x", "y"], callbacks=[rec]))
    assert [g[0].text for g in result.generations] == ["echo: x", "echo: y"]
    assert rec.names().count("on_llm_start") == 2 and rec.names().count("on_llm_end") == 2
    assert result.llm_output is not None and result.llm_output["token_usage"]["prompt_tokens"] == 14


# -- one LLM span per call, next to a provider instrumentation ----------------------------------


def test_a_provider_instrumentation_adds_no_second_llm_span_unless_asked(
    server: OpenAIServer,
) -> None:
    """With OpenLLMetry's instrumentation of the openai SDK in the same app (its own
    process: instrumenting patches the SDK process-wide), spanhook's calls make one LLM span
    each, sync, streamed and async; the app's direct SDK call is still traced (suppression
    is scoped to spanhook's calls); with ``suppress_provider_spans=False`` the provider's span
    is kept and nests under the run."""
    phases = run_app(Path(__file__).with_name("instrumented_openai_app.py"), server.url)

    names = [s["name"] for s in phases["suppressed"]]
    assert names.count("chat test-model") == 3
    assert len(names) == 4 and names[-1] != "chat test-model"  # the direct call's own span
    assert len(server.requests) == 5

    provider_span, run_span = phases["kept"]
    assert run_span["name"] == "chat test-model" and provider_span["name"] != run_span["name"]
    assert provider_span["parent"] == run_span["id"]


# -- trace context on the model's HTTP requests ----------------------------------------------


def _traceparent_calls(
    server: OpenAIServer, model: Any, how: str
) -> None:  # one request per way of calling
    if how == "invoke":
        model.invoke("hi")
    elif how == "ainvoke":
        asyncio.run(model.ainvoke("hi"))
    elif how == "stream":
        list(model.stream("hi"))
    else:

        async def main() -> None:
            async for _ in model.astream("hi"):
                pass

        asyncio.run(main())


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "stream", "astream"])
@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_requests_carry_the_model_runs_traceparent(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter, kind: str, how: str
) -> None:
    """A traced model server joins the trace: the request's ``traceparent`` names the model
    run's span as parent, in the same trace."""
    model = chat(server) if kind == "chat" else completion_llm(server)
    _traceparent_calls(server, model, how)
    (request,) = server.requests
    (span,) = memory_exporter.get_finished_spans()
    ctx = span.get_span_context()
    flags = int(ctx.trace_flags)
    assert flags & 1  # sampled
    expected = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}"
    assert request.headers["traceparent"] == expected


@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_trace_context_propagation_can_be_turned_off(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter, kind: str
) -> None:
    model = (
        chat(server, propagate_trace_context=False)
        if kind == "chat"
        else completion_llm(server, propagate_trace_context=False)
    )
    model.invoke("hi")
    asyncio.run(model.ainvoke("hi"))
    assert len(server.requests) == 2
    assert all("traceparent" not in r.headers for r in server.requests)


def test_explicit_request_headers_win_over_the_propagated_ones(
    server: OpenAIServer, memory_exporter: InMemorySpanExporter
) -> None:
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    chat(server).invoke("hi", extra_headers={"traceparent": mine})
    assert server.requests[0].headers["traceparent"] == mine


def test_unknown_constructor_option_is_rejected(server: OpenAIServer) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['temprature'\]"):
        ChatOpenAI("m", base_url=server.url, api_key=SECRET, temprature=0.5)  # type: ignore[call-arg]
