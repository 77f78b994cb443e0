"""Sync and async give the same runs: every request method of chains, LLMs, chat models,
tools, agents and retrievers, run both ways, delivers the same handler events (names,
arguments, keyword arguments, parent links) and records the same spans (names, kinds,
attributes, events, status, parents), on success, error and retry paths.

The OpenAI-compatible models run against the OpenAI-compatible server of
``tests/openai_server.py`` on 127.0.0.1 (success, streaming, tool calls, retries, a rejected
request). Ids and timestamps are normalised away; runs that may interleave (batches, ``aapply``) are
compared as multisets of per-run records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import Event, Recorder
from openai_server import Error, OpenAIServer, Text, ToolCall
from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.chains import Chain, LLMChain, SequentialChain, SimpleSequentialChain
from spanhook.chat_models import ChatOpenAI, FakeListChatModel, OfflineChatModel
from spanhook.llms import LLM, FakeListLLM, OfflineLLM, OpenAI
from spanhook.prompts import PromptTemplate
from spanhook.retrievers import InMemoryRetriever
from spanhook.schema import GenerationChunk
from spanhook.tools import Tool
from spanhook.tracing import attributes as attr

# -- what is compared ------------------------------------------------------------------------


def _norm(value: Any) -> Any:
    """A comparable form: ids dropped, exceptions as type and message, objects by fields."""
    if isinstance(value, uuid.UUID):
        return "<id>"
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _norm(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return (type(value).__name__, fields)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        fields = {k: _norm(v) for k, v in vars(value).items() if not k.startswith("_")}
        return (type(value).__name__, fields)
    return value


def _run_records(events: list[Event]) -> list[str]:
    """One record per run: its events in order (with everything they carry but ids), and the
    start event of its parent run (the parent link, without ids)."""
    by_run: dict[uuid.UUID, list[Event]] = {}
    for e in events:
        by_run.setdefault(e.run_id, []).append(e)
    start_of = {rid: repr([*_norm(evs[0].args[:1]), evs[0].event]) for rid, evs in by_run.items()}
    records = []
    for rid, evs in by_run.items():
        parent = evs[0].parent_run_id
        body = [
            (
                e.event,
                _norm(e.args),
                _norm({k: v for k, v in e.kwargs.items() if k not in ("run_id", "parent_run_id")}),
                "same parent" if e.parent_run_id == parent else "other parent",
            )
            for e in evs
        ]
        records.append(repr((start_of.get(parent) if parent else None, start_of[rid], body)))
    return sorted(records)


_VARIABLE_ATTRIBUTES = {attr.RUN_ID, attr.GEN_AI_RESPONSE_TTFC}


def _span_records(spans: tuple[ReadableSpan, ...]) -> list[str]:
    names = {s.context.span_id: s.name for s in spans}  # type: ignore[union-attr]
    records = []
    for s in spans:
        attrs = {k: v for k, v in (s.attributes or {}).items() if k not in _VARIABLE_ATTRIBUTES}
        events = [
            (e.name, {k: v for k, v in (e.attributes or {}).items() if k != "exception.stacktrace"})
            for e in s.events
        ]
        parent = names.get(s.parent.span_id) if s.parent is not None else None
        records.append(
            repr(
                (
                    s.name,
                    s.kind,
                    parent,
                    s.status.status_code,
                    s.status.description,
                    sorted(attrs.items()),
                    events,
                    sorted(k for k in (s.attributes or {}) if k in _VARIABLE_ATTRIBUTES),
                )
            )
        )
    return sorted(records)


# -- the apps ------------------------------------------------------------------------------


class Add(Chain):
    input_keys: ClassVar[list[str]] = ["a", "b"]
    output_keys: ClassVar[list[str]] = ["sum"]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"sum": inputs["a"] + inputs["b"]}


class Flaky(LLM):
    """Fails ``failures`` times with a connection error, then answers."""

    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("model server down")
        return "recovered"

    async def _acall(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> str:
        return self._call(prompt)


class Streamer(LLM):
    """A provider-style LLM: its stream reports its own tokens."""

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        return "a b c"

    def _stream(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[GenerationChunk]:
        for t in ("a", " b", " c"):
            run_manager.on_llm_new_token(t, chunk=GenerationChunk(text=t))
            yield GenerationChunk(text=t)


def _chain() -> LLMChain:
    return LLMChain(
        llm=FakeListLLM(["one", "two"], tags=["model"]),
        prompt=PromptTemplate.from_template("say {q}"),
        tags=["chain"],
        metadata={"app": "parity"},
    )


def _echo_tool() -> Tool:
    def echo(text: str) -> str:
        return f"echo:{text}"

    return Tool(name="echo", func=echo, description="echoes")


def _failing_tool() -> Tool:
    def fail(text: str) -> str:
        raise ValueError(f"cannot handle {text}")

    return Tool(name="fail", func=fail, description="fails")


def _agent(**kwargs: Any) -> AgentExecutor:
    return AgentExecutor(llm=OfflineLLM(), tools=[calculator_tool()], **kwargs)


def _astream(obj: Any, inp: Any, **kw: Any) -> Awaitable[list[Any]]:
    async def main() -> list[Any]:
        return [c async for c in obj.astream(inp, **kw)]

    return main()


Sync = Callable[..., Any]
Async = Callable[..., Awaitable[Any]]

CASES: dict[str, tuple[Sync, Async]] = {
    # chains
    "chain __call__/acall": (
        lambda cb: _chain()({"q": "hi"}, callbacks=cb),
        lambda cb: _chain().acall({"q": "hi"}, callbacks=cb),
    ),
    "chain run/arun": (
        lambda cb: _chain().run("hi", callbacks=cb),
        lambda cb: _chain().arun("hi", callbacks=cb),
    ),
    "chain invoke/ainvoke": (
        lambda cb: _chain().invoke({"q": "hi"}, {"callbacks": cb, "run_name": "named"}),
        lambda cb: _chain().ainvoke({"q": "hi"}, {"callbacks": cb, "run_name": "named"}),
    ),
    "chain apply/aapply": (
        lambda cb: _chain().apply([{"q": "a"}, {"q": "b"}], callbacks=cb),
        lambda cb: _chain().aapply([{"q": "a"}, {"q": "b"}], callbacks=cb),
    ),
    "chain batch/abatch": (
        lambda cb: _chain().batch(["a", "b"], max_concurrency=1, callbacks=cb),
        lambda cb: _chain().abatch(["a", "b"], max_concurrency=1, callbacks=cb),
    ),
    "chain stream/astream": (
        lambda cb: list(_chain().stream({"q": "hi"}, callbacks=cb)),
        lambda cb: _astream(_chain(), {"q": "hi"}, callbacks=cb),
    ),
    "chain predict/apredict": (
        lambda cb: _chain().predict(callbacks=cb, q="hi"),
        lambda cb: _chain().apredict(callbacks=cb, q="hi"),
    ),
    "plain chain stream/astream": (
        lambda cb: list(Add().stream({"a": 1, "b": 2}, callbacks=cb)),
        lambda cb: _astream(Add(), {"a": 1, "b": 2}, callbacks=cb),
    ),
    "chain missing keys invoke/ainvoke": (
        lambda cb: Add().invoke({"a": 1}, callbacks=cb),
        lambda cb: Add().ainvoke({"a": 1}, callbacks=cb),
    ),
    "simple sequential run/arun": (
        lambda cb: SimpleSequentialChain(chains=[_chain(), _chain()]).run("x", callbacks=cb),
        lambda cb: SimpleSequentialChain(chains=[_chain(), _chain()]).arun("x", callbacks=cb),
    ),
    "sequential invoke/ainvoke": (
        lambda cb: SequentialChain(chains=[Add()], input_variables=["a", "b"]).invoke(
            {"a": 1, "b": 2}, callbacks=cb
        ),
        lambda cb: SequentialChain(chains=[Add()], input_variables=["a", "b"]).ainvoke(
            {"a": 1, "b": 2}, callbacks=cb
        ),
    ),
    # LLMs
    "llm invoke/ainvoke": (
        lambda cb: OfflineLLM().invoke("2 + 3 = ", callbacks=cb, stop=["x"]),
        lambda cb: OfflineLLM().ainvoke("2 + 3 = ", callbacks=cb, stop=["x"]),
    ),
    "llm __call__/ainvoke": (
        lambda cb: OfflineLLM()("2 + 3 = ", callbacks=cb),
        lambda cb: OfflineLLM().ainvoke("2 + 3 = ", callbacks=cb),
    ),
    "llm predict/apredict": (
        lambda cb: OfflineLLM().predict("hello", callbacks=cb),
        lambda cb: OfflineLLM().apredict("hello", callbacks=cb),
    ),
    "llm batch/abatch": (
        lambda cb: OfflineLLM().batch(["1 + 1", "2 + 2"], max_concurrency=1, callbacks=cb),
        lambda cb: OfflineLLM().abatch(["1 + 1", "2 + 2"], max_concurrency=1, callbacks=cb),
    ),
    "llm generate/agenerate": (
        lambda cb: OfflineLLM().generate(["1 + 1", "2 + 2"], callbacks=cb),
        lambda cb: OfflineLLM().agenerate(["1 + 1", "2 + 2"], callbacks=cb),
    ),
    "llm stream/astream": (
        lambda cb: list(OfflineLLM().stream("tell me a story", callbacks=cb)),
        lambda cb: _astream(OfflineLLM(), "tell me a story", callbacks=cb),
    ),
    "llm invoke/ainvoke streaming": (
        lambda cb: OfflineLLM(streaming=True).invoke("tell me", callbacks=cb),
        lambda cb: OfflineLLM(streaming=True).ainvoke("tell me", callbacks=cb),
    ),
    "provider llm stream/astream": (
        lambda cb: list(Streamer().stream("x", callbacks=cb)),
        lambda cb: _astream(Streamer(), "x", callbacks=cb),
    ),
    "llm retries invoke/ainvoke": (
        lambda cb: Flaky(2, max_retries=2).invoke("x", callbacks=cb),
        lambda cb: Flaky(2, max_retries=2).ainvoke("x", callbacks=cb),
    ),
    "llm retries exhausted invoke/ainvoke": (
        lambda cb: Flaky(3, max_retries=1).invoke("x", callbacks=cb),
        lambda cb: Flaky(3, max_retries=1).ainvoke("x", callbacks=cb),
    ),
    # chat models
    "chat invoke/ainvoke": (
        lambda cb: OfflineChatModel().invoke([("system", "be kind"), "2 + 2"], callbacks=cb),
        lambda cb: OfflineChatModel().ainvoke([("system", "be kind"), "2 + 2"], callbacks=cb),
    ),
    "chat __call__/ainvoke": (
        lambda cb: OfflineChatModel()([("human", "hi")], callbacks=cb),
        lambda cb: OfflineChatModel().ainvoke([("human", "hi")], callbacks=cb),
    ),
    "chat predict_messages/ainvoke": (
        lambda cb: OfflineChatModel().predict_messages([("human", "hi")], callbacks=cb),
        lambda cb: OfflineChatModel().ainvoke([("human", "hi")], callbacks=cb),
    ),
    "chat predict/apredict": (
        lambda cb: OfflineChatModel().predict("hi", callbacks=cb),
        lambda cb: OfflineChatModel().apredict("hi", callbacks=cb),
    ),
    "chat batch/abatch": (
        lambda cb: FakeListChatModel(["a", "b"]).batch(["x", "y"], max_concurrency=1, callbacks=cb),
        lambda cb: FakeListChatModel(["a", "b"]).abatch(
            ["x", "y"], max_concurrency=1, callbacks=cb
        ),
    ),
    "chat stream/astream": (
        lambda cb: list(OfflineChatModel().stream("tell me a story", callbacks=cb)),
        lambda cb: _astream(OfflineChatModel(), "tell me a story", callbacks=cb),
    ),
    "chat invoke/ainvoke streaming": (
        lambda cb: OfflineChatModel(streaming=True).invoke("tell me", callbacks=cb),
        lambda cb: OfflineChatModel(streaming=True).ainvoke("tell me", callbacks=cb),
    ),
    # tools
    "tool run/arun": (
        lambda cb: _echo_tool().run("hi", callbacks=cb, tool_call_id="c1"),
        lambda cb: _echo_tool().arun("hi", callbacks=cb, tool_call_id="c1"),
    ),
    "tool invoke/ainvoke dict": (
        lambda cb: _echo_tool().invoke({"text": "hi"}, {"callbacks": cb}),
        lambda cb: _echo_tool().ainvoke({"text": "hi"}, {"callbacks": cb}),
    ),
    "tool __call__/arun": (
        lambda cb: _echo_tool()("hi", callbacks=cb),
        lambda cb: _echo_tool().arun("hi", callbacks=cb),
    ),
    "tool error run/arun": (
        lambda cb: _failing_tool().run("hi", callbacks=cb),
        lambda cb: _failing_tool().arun("hi", callbacks=cb),
    ),
    # agents
    "agent run/arun": (
        lambda cb: _agent().run("What is 6 * 7?", callbacks=cb),
        lambda cb: _agent().arun("What is 6 * 7?", callbacks=cb),
    ),
    "agent invoke/ainvoke stopped with steps": (
        lambda cb: _agent(max_iterations=1, return_intermediate_steps=True).invoke(
            {"input": "What is 6 * 7?"}, callbacks=cb
        ),
        lambda cb: _agent(max_iterations=1, return_intermediate_steps=True).ainvoke(
            {"input": "What is 6 * 7?"}, callbacks=cb
        ),
    ),
    # retrievers
    "retriever invoke/ainvoke": (
        lambda cb: InMemoryRetriever(["red fox", "blue sky"]).invoke("fox", callbacks=cb),
        lambda cb: InMemoryRetriever(["red fox", "blue sky"]).ainvoke("fox", callbacks=cb),
    ),
    "retriever get_relevant_documents": (
        lambda cb: InMemoryRetriever(["red fox"]).get_relevant_documents("fox", callbacks=cb),
        lambda cb: InMemoryRetriever(["red fox"]).aget_relevant_documents("fox", callbacks=cb),
    ),
}


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("returned", _norm(call()))
    except Exception as e:
        return ("raised", _norm(e))


@pytest.mark.parametrize("capture", [False, True], ids=["no-content", "content"])
@pytest.mark.parametrize("name", list(CASES))
def test_sync_and_async_give_the_same_events_and_spans(
    name: str, capture: bool, memory_exporter: InMemorySpanExporter
) -> None:
    if capture:
        import spanhook

        spanhook.configure(exporters="none", capture_content=True, token_events=True)
    sync_call, async_call = CASES[name]

    sync_rec = Recorder()
    sync_outcome = _outcome(lambda: sync_call([sync_rec]))
    sync_spans = memory_exporter.get_finished_spans()
    memory_exporter.clear()

    async_rec = Recorder()
    async_outcome = _outcome(lambda: asyncio.run(async_call([async_rec])))
    async_spans = memory_exporter.get_finished_spans()

    assert sync_rec.events, "the case must produce events"
    assert async_outcome == sync_outcome
    assert _run_records(async_rec.events) == _run_records(sync_rec.events)
    assert _span_records(async_spans) == _span_records(sync_spans)
    assert len(sync_spans) == len(sync_rec.starts())


def test_the_comparison_sees_span_event_attributes() -> None:
    """A retry event recorded with different attributes makes the span records differ."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for attrs in ({"spanhook.retry.attempt": 1}, {"spanhook.retry.attempt": 1, "e": "x"}):
        with tracer.start_as_current_span("run") as span:
            span.add_event("spanhook.retry", attrs)
    first, second = exporter.get_finished_spans()
    assert _span_records((first,)) != _span_records((second,))


# -- the OpenAI-compatible models, against a real server on 127.0.0.1 ---------------------------


def _openai_cases() -> dict[str, tuple[list[Any], Sync, Async]]:
    def chat(url: str, **kw: Any) -> ChatOpenAI:
        return ChatOpenAI("m", base_url=url, api_key="k", retry_delay=0, **kw)

    def completion(url: str, **kw: Any) -> OpenAI:
        return OpenAI("m", base_url=url, api_key="k", retry_delay=0, **kw)

    answer = Text("Paris is the capital.", response_id="chatcmpl-1")
    return {
        "chat invoke/ainvoke": (
            [answer],
            lambda u, cb: chat(u).invoke("capital?", callbacks=cb),
            lambda u, cb: chat(u).ainvoke("capital?", callbacks=cb),
        ),
        "chat stream/astream": (
            [answer],
            lambda u, cb: list(chat(u).stream("capital?", callbacks=cb)),
            lambda u, cb: _astream(chat(u), "capital?", callbacks=cb),
        ),
        "chat tool call invoke/ainvoke": (
            [ToolCall(name="calculator", arguments='{"expression": "2 + 3"}')],
            lambda u, cb: chat(u, streaming=True).invoke("2 + 3?", callbacks=cb),
            lambda u, cb: chat(u, streaming=True).ainvoke("2 + 3?", callbacks=cb),
        ),
        "chat retries invoke/ainvoke": (
            [Error(503, "overloaded"), Error(500), answer],
            lambda u, cb: chat(u, max_retries=2).invoke("capital?", callbacks=cb),
            lambda u, cb: chat(u, max_retries=2).ainvoke("capital?", callbacks=cb),
        ),
        "chat rejected invoke/ainvoke": (
            [Error(400, "bad request", "invalid_request_error")],
            lambda u, cb: chat(u, max_retries=2).invoke("capital?", callbacks=cb),
            lambda u, cb: chat(u, max_retries=2).ainvoke("capital?", callbacks=cb),
        ),
        "completion invoke/ainvoke": (
            [answer],
            lambda u, cb: completion(u).invoke("capital?", callbacks=cb),
            lambda u, cb: completion(u).ainvoke("capital?", callbacks=cb),
        ),
        "completion stream/astream": (
            [answer],
            lambda u, cb: list(completion(u).stream("capital?", callbacks=cb)),
            lambda u, cb: _astream(completion(u), "capital?", callbacks=cb),
        ),
    }


OPENAI_CASES = _openai_cases()


@pytest.mark.parametrize("name", list(OPENAI_CASES))
def test_openai_models_give_the_same_events_and_spans_sync_and_async(
    name: str, memory_exporter: InMemorySpanExporter
) -> None:
    replies, sync_call, async_call = OPENAI_CASES[name]
    with OpenAIServer() as server:
        server.script(*replies)
        sync_rec = Recorder()
        sync_outcome = _outcome(lambda: sync_call(server.url, [sync_rec]))
        sync_spans = memory_exporter.get_finished_spans()
        memory_exporter.clear()
        assert server.pending == 0
        server.script(*replies)
        async_rec = Recorder()
        async_outcome = _outcome(lambda: asyncio.run(async_call(server.url, [async_rec])))
        async_spans = memory_exporter.get_finished_spans()
        assert server.pending == 0
    assert async_outcome == sync_outcome
    assert _run_records(async_rec.events) == _run_records(sync_rec.events)
    assert _span_records(async_spans) == _span_records(sync_spans)
