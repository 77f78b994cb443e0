"""What content reaches exported spans: nothing by default, opt-in per the GenAI conventions,
truncated (still valid JSON), secrets never. Checked on what a real OTLP receiver decoded."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

import spanhook
from collector_harness import GrpcTraceReceiver, ReceivedSpan, attributes_to_dict
from helpers import Recorder
from spanhook.agents import AgentExecutor
from spanhook.callbacks import dispatch_custom_event
from spanhook.chains import LLMChain
from spanhook.chat_models import OfflineChatModel
from spanhook.llms import LLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.retrievers import InMemoryRetriever
from spanhook.runtime.run import Run
from spanhook.tools import Tool

PROMPT = "PROMPT-MARK-1"
TOPIC = "TOPIC-MARK-2"
QUESTION = "Ask the lookup tool about QUESTION-MARK-3"
RESULT = "RESULT-MARK-4"
QUERY = "retrieval QUERY-MARK-5"
DOC = "DOC-MARK-6 about retrieval"
CHAT = "CHAT-MARK-7"
CUSTOM = "CUSTOM-MARK-8"
MARKS = [PROMPT, TOPIC, "QUESTION-MARK-3", RESULT, "QUERY-MARK-5", "DOC-MARK-6", CHAT, CUSTOM]
WORKLOAD_SPANS = 8


@pytest.fixture(autouse=True)
def _receiver_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[GrpcTraceReceiver]:
    for var in (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "SPANHOOK_CONTENT_MAX_LENGTH",
    ):
        monkeypatch.delenv(var, raising=False)
    with GrpcTraceReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{rx.endpoint}")
        yield rx
        spanhook.shutdown(timeout=2.0)


@pytest.fixture
def rx(_receiver_env: GrpcTraceReceiver) -> GrpcTraceReceiver:
    return _receiver_env


def lookup(query: str) -> str:
    dispatch_custom_event("progress", {"note": CUSTOM})
    return RESULT


def workload() -> None:
    """Every kind of content: prompts, completions, chain inputs/outputs, tool arguments
    and results, text events, custom events, retrieval queries and documents, chat messages."""
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template(PROMPT + " say {topic}"))
    assert chain.run(topic=TOPIC) == f"You said: {PROMPT} say {TOPIC}"
    agent = AgentExecutor(
        llm=OfflineLLM(),
        tools=[Tool(name="lookup", func=lookup, description="Looks things up.")],
        name="content-agent",
    )
    assert agent.run(QUESTION) == RESULT
    assert InMemoryRetriever([DOC, "unrelated"], k=1).invoke(QUERY)[0].page_content == DOC
    assert CHAT in str(OfflineChatModel().invoke([("human", CHAT)]).content)


def exported(rx: GrpcTraceReceiver, n: int = WORKLOAD_SPANS) -> list[ReceivedSpan]:
    assert spanhook.force_flush(timeout=10.0)
    spans = rx.wait_for(n)
    assert len(spans) == n
    return spans


def span_texts(spans: list[ReceivedSpan]) -> list[str]:
    """Every string an exported span carries: name, status, attributes, events."""
    out: list[str] = []
    for s in spans:
        out += [s.span.name, s.span.status.message, *map(str, s.resource.values())]
        out += [f"{k}={v}" for k, v in s.attributes.items()]
        for e in s.span.events:
            out.append(e.name)
            out += [f"{k}={v}" for k, v in attributes_to_dict(e.attributes).items()]
    return out


def named(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    matches = [s for s in spans if s.span.name == name]
    assert len(matches) == 1, [s.span.name for s in spans]
    return matches[0]


def event_attrs(span: ReceivedSpan, name: str) -> dict[str, Any]:
    events = [e for e in span.span.events if e.name == name]
    assert len(events) == 1, [e.name for e in span.span.events]
    return attributes_to_dict(events[0].attributes)


def check_messages(value: str, output: bool) -> list[dict[str, Any]]:
    """A GenAI input/output messages attribute: JSON, role + parts (+ finish_reason)."""
    messages = json.loads(value)
    assert isinstance(messages, list) and messages
    for m in messages:
        assert isinstance(m["role"], str)
        assert m["parts"] and all(
            p["type"] in ("text", "tool_call", "tool_call_response") for p in m["parts"]
        )
        assert all(isinstance(p["content"], str) for p in m["parts"] if p["type"] == "text")
        if output:
            assert isinstance(m["finish_reason"], str)
    return messages  # type: ignore[no-any-return]


def test_no_content_on_exported_spans_by_default(rx: GrpcTraceReceiver) -> None:
    spanhook.configure(exporters="otlp")
    rec = Recorder()
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template(PROMPT + " say {topic}"))
    chain.run(topic=TOPIC, callbacks=[rec])
    workload()
    spans = exported(rx, WORKLOAD_SPANS + 2)
    text = "\n".join(span_texts(spans))
    for mark in MARKS:
        assert mark not in text
    for key in (
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "spanhook.input",
        "spanhook.output",
        "spanhook.text",
        "spanhook.data",
        "spanhook.log",
    ):
        assert f"{key}=" not in text
    # What is not content is still there.
    tool = named(spans, "execute_tool lookup")
    assert tool.attributes["gen_ai.tool.name"] == "lookup"
    assert named(spans, "chat spanhook-offline-1-chat").attributes["gen_ai.usage.input_tokens"] > 0
    # Classic handlers run in-process: they get the content whatever the export policy.
    assert rec.of("on_chain_start")[0].args[1] == {"topic": TOPIC}
    assert rec.of("on_llm_start")[0].args[1] == [f"{PROMPT} say {TOPIC}"]
    assert (
        rec.of("on_llm_end")[0].args[0].generations[0][0].text == f"You said: {PROMPT} say {TOPIC}"
    )


@pytest.mark.parametrize("how", ["env", "argument"])
def test_opt_in_puts_content_on_spans(
    rx: GrpcTraceReceiver, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "env":
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        spanhook.configure(exporters="otlp")
    else:
        spanhook.configure(exporters="otlp", capture_content=True)
    workload()
    spans = exported(rx)
    text = "\n".join(span_texts(spans))
    for mark in MARKS:
        assert mark in text

    chain = named(spans, "LLMChain")
    assert json.loads(chain.attributes["spanhook.input"]) == {"topic": TOPIC}
    assert json.loads(chain.attributes["spanhook.output"]) == {
        "text": f"You said: {PROMPT} say {TOPIC}"
    }
    assert (
        event_attrs(chain, "spanhook.text")["spanhook.text"]
        == f"Prompt after formatting:\n{PROMPT} say {TOPIC}"
    )

    llm = next(s for s in spans if s.parent_span_id == chain.span_id)
    assert check_messages(llm.attributes["gen_ai.input.messages"], output=False) == [
        {"role": "user", "parts": [{"type": "text", "content": f"{PROMPT} say {TOPIC}"}]}
    ]
    assert check_messages(llm.attributes["gen_ai.output.messages"], output=True) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": f"You said: {PROMPT} say {TOPIC}"}],
            "finish_reason": "stop",
        }
    ]

    tool = named(spans, "execute_tool lookup")
    assert tool.attributes["gen_ai.tool.call.arguments"] == QUESTION
    assert tool.attributes["gen_ai.tool.call.result"] == RESULT
    assert json.loads(event_attrs(tool, "spanhook.custom_event")["spanhook.data"]) == {
        "note": CUSTOM
    }
    agent = named(spans, "invoke_agent content-agent")
    assert json.loads(agent.attributes["spanhook.input"]) == {"input": QUESTION}
    assert json.loads(agent.attributes["spanhook.output"]) == {"output": RESULT}
    assert event_attrs(agent, "spanhook.agent.action")["gen_ai.tool.call.arguments"] == QUESTION

    retriever = next(s for s in spans if s.attributes.get("spanhook.run.kind") == "retriever")
    assert retriever.attributes["spanhook.input"] == QUERY
    assert json.loads(retriever.attributes["spanhook.output"]) == [DOC]

    chat = named(spans, "chat spanhook-offline-1-chat")
    assert check_messages(chat.attributes["gen_ai.input.messages"], output=False) == [
        {"role": "user", "parts": [{"type": "text", "content": CHAT}]}
    ]
    check_messages(chat.attributes["gen_ai.output.messages"], output=True)


def test_argument_overrides_the_environment(
    rx: GrpcTraceReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    spanhook.configure(exporters="otlp", capture_content=False)
    workload()
    text = "\n".join(span_texts(exported(rx)))
    assert not [m for m in MARKS if m in text]


def test_content_is_truncated_with_a_marker_and_stays_json(rx: GrpcTraceReceiver) -> None:
    limit = 200
    spanhook.configure(exporters="otlp", capture_content=True, max_content_length=limit)
    topic = TOPIC + "x" * 5000
    prompt = f"{PROMPT} say {topic}"
    LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template(PROMPT + " say {topic}")).run(
        topic=topic
    )
    question = QUESTION + " " + "y" * 3000
    AgentExecutor(llm=OfflineLLM(), tools=[Tool(name="lookup", func=lookup, description="d")]).run(
        question
    )
    spans = exported(rx, 6)
    for s in spans:
        for key in (
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "spanhook.input",
            "spanhook.output",
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
        ):
            if key in s.attributes:
                assert len(s.attributes[key]) <= limit

    chain = named(spans, "LLMChain")
    inputs = json.loads(chain.attributes["spanhook.input"])  # still valid JSON
    assert inputs["topic"].startswith(TOPIC + "xxx")
    assert inputs["topic"].endswith(f"...[truncated, {len(topic)} chars]")
    llm = next(s for s in spans if s.parent_span_id == chain.span_id)
    [message] = check_messages(llm.attributes["gen_ai.input.messages"], output=False)
    content = message["parts"][0]["content"]
    assert content.startswith(f"{PROMPT} say {TOPIC}")
    assert content.endswith(f"...[truncated, {len(prompt)} chars]")
    # Plain strings are cut at the end, with the same marker.
    tool_args = named(spans, "execute_tool lookup").attributes["gen_ai.tool.call.arguments"]
    assert len(tool_args) == limit
    assert tool_args.startswith(QUESTION)
    assert tool_args.endswith(f"...[truncated, {len(question)} chars]")


def test_max_content_length_from_the_environment(
    rx: GrpcTraceReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANHOOK_CONTENT_MAX_LENGTH", "64")
    spanhook.configure(exporters="otlp", capture_content=True)
    Tool(name="echo", func=lambda s: s, description="d").run("z" * 500)
    [tool] = exported(rx, 1)
    assert tool.attributes["gen_ai.tool.call.arguments"] == "z" * 39 + "...[truncated, 500 chars]"
    assert len(tool.attributes["gen_ai.tool.call.result"]) == 64


def test_terminal_colours_never_reach_span_content(
    rx: GrpcTraceReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # verbose output colours the formatted prompt
    spanhook.configure(exporters="otlp", capture_content=True)
    rec = Recorder()
    LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{topic}")).run(
        topic=TOPIC, callbacks=[rec]
    )
    chain = named(exported(rx, 2), "LLMChain")
    assert "\x1b[" in rec.of("on_text")[0].args[0]  # handlers get what LangChain gives them
    assert (
        event_attrs(chain, "spanhook.text")["spanhook.text"] == f"Prompt after formatting:\n{TOPIC}"
    )


# ---------------------------------------------------------------- secrets

KEY_SECRET = "sk-CTOR-SECRET-1"
AUTH_SECRET = "AUTH-HEADER-SECRET-2"
META_SECRET = "sk-META-SECRET-3"
META_AUTH_SECRET = "META-AUTH-SECRET-4"
KWARG_SECRET = "KWARG-SECRET-5"
TOOL_SECRET = "TOOL-ARG-SECRET-6"
SECRETS = [KEY_SECRET, AUTH_SECRET, META_SECRET, META_AUTH_SECRET, KWARG_SECRET, TOOL_SECRET]


class KeyedLLM(LLM):
    """A provider-style model whose identifying params carry an API key and auth header."""

    model_name = "keyed-model"

    def __init__(self, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key

    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "api_key": self.api_key,
            "default_headers": {"Authorization": f"Bearer {AUTH_SECRET}"},
            "temperature": 0.5,
        }

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> str:
        return f"answer to {prompt}"


@pytest.mark.parametrize("capture", [False, True], ids=["default", "capture"])
def test_secrets_never_reach_spans_or_handler_params(rx: GrpcTraceReceiver, capture: bool) -> None:
    spanhook.configure(exporters="otlp", capture_content=capture)
    rec = Recorder()
    metadata = {
        "api_key": META_SECRET,
        "Authorization": f"Bearer {META_AUTH_SECRET}",
        "user": "u-1",
    }
    chain = LLMChain(llm=KeyedLLM(api_key=KEY_SECRET), prompt=PromptTemplate.from_template("{q}"))
    assert (
        chain.run(q="PROMPT-CONTENT", callbacks=[rec], metadata=metadata)
        == "answer to PROMPT-CONTENT"
    )
    KeyedLLM(api_key=KEY_SECRET).invoke(
        "direct", callbacks=[rec], extra_headers={"x-api-key": KWARG_SECRET}
    )
    tool = Tool(name="fetch", func=lambda url, api_key: f"got {url}", description="d")
    tool.run({"url": "https://example.invalid", "api_key": TOOL_SECRET}, callbacks=[rec])

    spans = exported(rx, 4)
    text = "\n".join(span_texts(spans))
    for secret in SECRETS:
        assert secret not in text
    llm_span = next(s for s in spans if s.span.name == "text_completion keyed-model")
    assert llm_span.attributes["spanhook.metadata.api_key"] == "***"
    assert llm_span.attributes["spanhook.metadata.Authorization"] == "***"
    assert llm_span.attributes["spanhook.metadata.user"] == "u-1"
    assert llm_span.attributes["gen_ai.request.temperature"] == 0.5
    if capture:
        args = json.loads(
            named(spans, "execute_tool fetch").attributes["gen_ai.tool.call.arguments"]
        )
        assert args == {"url": "https://example.invalid", "api_key": "***"}

    starts = rec.of("on_llm_start")
    assert len(starts) == 2
    for start in starts:
        serialized, params = start.args[0], start.kwargs["invocation_params"]
        for secret in SECRETS:
            assert secret not in repr(serialized)
            assert secret not in repr(params)
        assert serialized["kwargs"]["api_key"] == "***"
        assert serialized["kwargs"]["default_headers"] == {"Authorization": "***"}
        assert params["api_key"] == "***"
        assert params["default_headers"] == {"Authorization": "***"}
        assert params["temperature"] == 0.5
    assert starts[1].kwargs["invocation_params"]["extra_headers"] == {"x-api-key": "***"}
    # Content itself does reach handlers (only secrets are masked).
    assert starts[0].args[1] == ["PROMPT-CONTENT"]
    assert rec.of("on_chain_start")[0].args[1] == {"q": "PROMPT-CONTENT"}


# -- capture per block of code, and the redaction hook -----------------------------------------


def test_capture_can_be_turned_off_for_one_request_and_what_it_runs(rx: GrpcTraceReceiver) -> None:
    spanhook.configure(exporters="otlp", capture_content=True)
    with spanhook.capture_content(False):
        workload()  # chains, an agent with a tool, a retriever, a chat model: all nested runs
        LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{t}")).batch(
            [{"t": f"BATCH-MARK-{i}"} for i in range(3)]  # runs in worker threads
        )
    private = exported(rx, WORKLOAD_SPANS + 6)
    text = "\n".join(span_texts(private))
    for mark in [*MARKS, "BATCH-MARK-"]:
        assert mark not in text
    assert "gen_ai.tool.name=lookup" in text  # what is not content is still recorded
    rx.clear()
    workload()  # outside the block: the process-wide setting again
    assert all(mark in "\n".join(span_texts(exported(rx))) for mark in MARKS)


def test_capture_can_be_turned_on_for_one_async_request(rx: GrpcTraceReceiver) -> None:
    spanhook.configure(exporters="otlp")  # off for the process
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{t}"))

    async def main() -> None:
        async def debug_request() -> None:
            with spanhook.capture_content(True):
                await chain.arun(t="DEBUG-MARK")

        await asyncio.gather(debug_request(), chain.arun(t="PLAIN-MARK"))

    asyncio.run(main())
    spans = exported(rx, 4)
    by_input = {s.attributes.get("spanhook.input"): s for s in spans if s.span.name == "LLMChain"}
    assert set(by_input) == {json.dumps({"t": "DEBUG-MARK"}), None}
    assert "PLAIN-MARK" not in "\n".join(span_texts(spans))
    with pytest.raises(TypeError, match="True or False"):
        spanhook.capture_content("yes")  # type: ignore[arg-type]


_MARK = re.compile(r"[A-Z]+-MARK-\d")


def scrub(key: str, value: Any) -> Any:
    """A user's redaction hook: hide every marker, whatever the shape of the value."""
    if isinstance(value, str):
        return _MARK.sub("[hidden]", value)
    if isinstance(value, dict):
        return {k: scrub(key, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(key, v) for v in value]
    return value


def test_the_redact_hook_sees_every_content_family_and_metadata(rx: GrpcTraceReceiver) -> None:
    seen: set[str] = set()

    def hook(key: str, value: Any) -> Any:
        seen.add(key)
        return scrub(key, value)

    spanhook.configure(exporters="otlp", capture_content=True, redact=hook)
    rec = Recorder()
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template(PROMPT + " say {topic}"))
    chain.run(topic=TOPIC, callbacks=[rec], metadata={"user_email": "EMAIL-MARK-9", "tier": "gold"})
    workload()
    spans = exported(rx, WORKLOAD_SPANS + 2)
    text = "\n".join(span_texts(spans))
    assert not _MARK.search(text)
    assert text.count("[hidden]") >= len(MARKS)
    assert {
        "spanhook.input",
        "spanhook.output",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "spanhook.text",
        "spanhook.data",
        "spanhook.log",
        "spanhook.metadata.user_email",
    } <= seen
    chain_span = next(
        s for s in spans if s.span.name == "LLMChain" and "spanhook.metadata.tier" in s.attributes
    )
    assert chain_span.attributes["spanhook.metadata.user_email"] == "[hidden]"
    assert chain_span.attributes["spanhook.metadata.tier"] == "gold"
    assert json.loads(chain_span.attributes["spanhook.input"]) == {"topic": "[hidden]"}
    # handlers run in-process and still get the real content
    assert rec.of("on_chain_start")[0].args[1] == {"topic": TOPIC}


def test_the_redact_hook_can_drop_a_value_and_fails_closed(
    rx: GrpcTraceReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    def hook(key: str, value: Any) -> Any:
        if key == "spanhook.output":
            return None
        if key == "spanhook.input":
            raise RuntimeError("hook bug")
        return value

    spanhook.configure(exporters="otlp", capture_content=True, redact=hook)
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{t}"))
    assert chain.run(t="INPUT-MARK-1") == "You said: INPUT-MARK-1"  # the run is unharmed
    spans = exported(rx, 2)
    chain_span = named(spans, "LLMChain")
    assert "spanhook.output" not in chain_span.attributes
    assert chain_span.attributes["spanhook.input"] == "[redaction failed]"
    assert "INPUT-MARK-1" not in chain_span.attributes.values()
    assert "the redact hook failed on spanhook.input" in caplog.text
    with pytest.raises(TypeError, match="redact must be a function"):
        spanhook.configure(exporters="otlp", redact="nope")  # type: ignore[arg-type]
