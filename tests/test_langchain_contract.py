"""langchain-core's callback contract, checked against langchain-core itself where it has the
same primitive (models, tools, message coercion) and against its documented rules otherwise.

- streamed tokens reach each handler exactly once: an LLM's ``_stream`` reports its own
  tokens through ``run_manager.on_llm_new_token``; a chat model's ``_stream`` is called
  without a run manager and the model reports each chunk;
- a chain request missing input keys is still a run: ``on_chain_start``, then
  ``on_chain_error`` naming the keys, and an ERROR span;
- ``batch_size``: 1 for each call of a chat model's batch, the number of prompts for an
  LLM's ``generate`` / ``batch``;
- a bare string in a message list is a human message; what langchain-core rejects is
  rejected with its errors;
- a tool function declaring ``callbacks`` gets the child callbacks; ``on_tool_start`` gets
  ``inputs=None`` for a string input and the dict for a dict input.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest
from langchain_core.callbacks import BaseCallbackHandler as LcHandler
from langchain_core.language_models.chat_models import BaseChatModel as LcChatModel
from langchain_core.language_models.fake import FakeListLLM as LcFakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel as LcFakeChat
from langchain_core.language_models.llms import LLM as LcLLM
from langchain_core.messages import AIMessage as LcAIMessage
from langchain_core.messages import AIMessageChunk as LcAIMessageChunk
from langchain_core.messages.utils import convert_to_messages
from langchain_core.outputs import ChatGeneration as LcChatGeneration
from langchain_core.outputs import ChatGenerationChunk as LcChatGenerationChunk
from langchain_core.outputs import ChatResult as LcChatResult
from langchain_core.outputs import GenerationChunk as LcGenerationChunk
from langchain_core.tools import tool as lc_tool
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from helpers import Recorder
from spanhook.chains import Chain, LLMChain
from spanhook.chat_models import BaseChatModel, FakeListChatModel, OfflineChatModel
from spanhook.llms import LLM, FakeListLLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.schema import (
    AIMessage,
    AIMessageChunk,
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    GenerationChunk,
)
from spanhook.tools import Tool
from spanhook.tracing import attributes as attr

TOKENS = ["The", " answer", " is", " 42"]


# -- the same provider-style models, written for langchain-core and for spanhook -----------


class LcProviderLLM(LcLLM):
    @property
    def _llm_type(self) -> str:
        return "provider"

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        return "".join(TOKENS)

    def _stream(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[LcGenerationChunk]:
        for t in TOKENS:
            chunk = LcGenerationChunk(text=t)
            if run_manager:
                run_manager.on_llm_new_token(t, chunk=chunk)
            yield chunk

    async def _astream(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[LcGenerationChunk]:
        for t in TOKENS:
            chunk = LcGenerationChunk(text=t)
            if run_manager:
                await run_manager.on_llm_new_token(t, chunk=chunk)
            yield chunk


class LcSilentLLM(LcLLM):
    @property
    def _llm_type(self) -> str:
        return "silent"

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        return "".join(TOKENS)

    def _stream(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[LcGenerationChunk]:
        for t in TOKENS:
            yield LcGenerationChunk(text=t)

    async def _astream(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[LcGenerationChunk]:
        for t in TOKENS:
            yield LcGenerationChunk(text=t)


class LcProviderChat(LcChatModel):
    streaming: bool = False

    @property
    def _llm_type(self) -> str:
        return "provider-chat"

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> LcChatResult:
        message = LcAIMessage(content="".join(TOKENS))
        return LcChatResult(generations=[LcChatGeneration(message=message)])

    def _stream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[LcChatGenerationChunk]:
        for t in TOKENS:
            chunk = LcChatGenerationChunk(message=LcAIMessageChunk(content=t))
            if run_manager:
                run_manager.on_llm_new_token(t, chunk=chunk)
            yield chunk

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[LcChatGenerationChunk]:
        for t in TOKENS:
            chunk = LcChatGenerationChunk(message=LcAIMessageChunk(content=t))
            if run_manager:
                await run_manager.on_llm_new_token(t, chunk=chunk)
            yield chunk


class ProviderLLM(LLM):
    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        return "".join(TOKENS)

    def _stream(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[GenerationChunk]:
        for t in TOKENS:
            chunk = GenerationChunk(text=t)
            if run_manager:
                run_manager.on_llm_new_token(t, chunk=chunk)
            yield chunk

    async def _astream(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[GenerationChunk]:
        for t in TOKENS:
            chunk = GenerationChunk(text=t)
            if run_manager:
                await run_manager.on_llm_new_token(t, chunk=chunk)
            yield chunk


class ProviderChat(BaseChatModel):
    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        message = AIMessage(content="".join(TOKENS))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        for t in TOKENS:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=t))
            if run_manager:
                run_manager.on_llm_new_token(t, chunk=chunk)
            yield chunk

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        for t in TOKENS:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=t))
            if run_manager:
                await run_manager.on_llm_new_token(t, chunk=chunk)
            yield chunk


class LcTokens(LcHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.starts: list[dict[str, Any]] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)

    def on_llm_start(self, serialized: Any, prompts: Any, **kwargs: Any) -> None:
        self.starts.append(kwargs)

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.starts.append({**kwargs, "messages": messages})

    def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        self.starts.append(kwargs)


def _consume(model: Any, how: str, callbacks: list[Any]) -> None:
    config = {"callbacks": callbacks}
    if how == "stream":
        list(model.stream("q", config=config))
    elif how == "astream":

        async def main() -> None:
            async for _ in model.astream("q", config=config):
                pass

        asyncio.run(main())
    elif how == "invoke":
        model.invoke("q", config=config)
    else:
        asyncio.run(model.ainvoke("q", config=config))


def _tokens(rec: Recorder) -> list[str]:
    return [e.kwargs["token"] for e in rec.of("on_llm_new_token")]


@pytest.mark.parametrize("how", ["stream", "astream"])
@pytest.mark.parametrize("kind", ["llm", "chat"])
def test_provider_model_tokens_arrive_once_as_in_langchain_core(
    kind: str, how: str, memory_exporter: InMemorySpanExporter
) -> None:
    lc_model: Any = LcProviderLLM() if kind == "llm" else LcProviderChat()
    lc = LcTokens()
    _consume(lc_model, how, [lc])
    # langchain-core's chat stream ends with an empty "last" chunk; the tokens are the same
    assert [t for t in lc.tokens if t] == TOKENS

    request, ctor = Recorder("request"), Recorder("ctor")
    model: Any = ProviderLLM(callbacks=[ctor]) if kind == "llm" else ProviderChat(callbacks=[ctor])
    _consume(model, how, [request])
    assert _tokens(request) == TOKENS
    assert _tokens(ctor) == TOKENS
    (span,) = memory_exporter.get_finished_spans()
    a = span.attributes or {}
    assert a[attr.STREAM_CHUNKS] == len(TOKENS)
    ttfc = a[attr.GEN_AI_RESPONSE_TTFC]
    assert isinstance(ttfc, float)
    assert 0 <= ttfc <= (span.end_time - span.start_time) / 1e9  # type: ignore[operator]


def test_chat_model_invoke_with_streaming_reports_each_token_once_as_langchain_core(
    memory_exporter: InMemorySpanExporter,
) -> None:
    lc = LcTokens()
    LcProviderChat(streaming=True).invoke("q", config={"callbacks": [lc]})
    assert [t for t in lc.tokens if t] == TOKENS
    for how in ("invoke", "ainvoke"):
        rec = Recorder()
        _consume(ProviderChat(streaming=True), how, [rec])
        assert _tokens(rec) == TOKENS, how


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_llm_invoke_with_streaming_reports_the_tokens_its_stream_reports_once(
    how: str, memory_exporter: InMemorySpanExporter
) -> None:
    rec = Recorder()
    _consume(ProviderLLM(streaming=True), how, [rec])
    assert _tokens(rec) == TOKENS
    (span,) = memory_exporter.get_finished_spans()
    assert (span.attributes or {})[attr.STREAM_CHUNKS] == len(TOKENS)


class SilentStreamLLM(LLM):
    """A custom LLM whose ``_stream`` yields chunks without reporting them."""

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        return "".join(TOKENS)

    def _stream(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[GenerationChunk]:
        for t in TOKENS:
            yield GenerationChunk(text=t)

    async def _astream(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> AsyncIterator[GenerationChunk]:
        for t in TOKENS:
            yield GenerationChunk(text=t)


@pytest.mark.parametrize("how", ["stream", "astream"])
def test_chunks_a_stream_does_not_report_are_counted_on_the_span_but_not_delivered(
    how: str, memory_exporter: InMemorySpanExporter
) -> None:
    rec = Recorder()
    lc = LcTokens()
    _consume(SilentStreamLLM(), how, [rec])
    # langchain-core delivers no token either for such a model
    _consume(LcSilentLLM(), how, [lc])
    assert _tokens(rec) == lc.tokens == []
    (span,) = memory_exporter.get_finished_spans()
    attrs = span.attributes or {}
    assert attrs[attr.STREAM_CHUNKS] == len(TOKENS)
    assert attrs[attr.GEN_AI_RESPONSE_TTFC] >= 0


BUILT_INS = {
    "OfflineLLM": lambda: OfflineLLM(streaming=True),
    "FakeListLLM": lambda: FakeListLLM(["one two three"], streaming=True),
    "OfflineChatModel": lambda: OfflineChatModel(streaming=True),
    "FakeListChatModel": lambda: FakeListChatModel(["one two three"], streaming=True),
}


@pytest.mark.parametrize("how", ["stream", "astream", "invoke", "ainvoke"])
@pytest.mark.parametrize("name", list(BUILT_INS))
def test_built_in_models_report_each_chunk_once(
    name: str, how: str, memory_exporter: InMemorySpanExporter
) -> None:
    rec = Recorder()
    _consume(BUILT_INS[name](), how, [rec])
    tokens = _tokens(rec)
    (end,) = rec.of("on_llm_end")
    assert "".join(tokens) == end.args[0].generations[0][0].text
    assert len(tokens) > 1
    (span,) = memory_exporter.get_finished_spans()
    assert (span.attributes or {})[attr.STREAM_CHUNKS] == len(tokens)


# -- a request that fails validation is still a run ------------------------------------------


class Add(Chain):
    input_keys: ClassVar[list[str]] = ["a", "b"]
    output_keys: ClassVar[list[str]] = ["sum"]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"sum": inputs["a"] + inputs["b"]}


@pytest.mark.parametrize("how", ["invoke", "ainvoke", "call", "acall", "stream", "astream"])
def test_missing_input_keys_start_the_run_and_end_it_with_the_error(
    how: str, memory_exporter: InMemorySpanExporter
) -> None:
    rec = Recorder()
    chain = Add()

    async def consume() -> None:
        async for _ in chain.astream({"a": 1}, callbacks=[rec]):
            pass

    calls = {
        "invoke": lambda: chain.invoke({"a": 1}, callbacks=[rec]),
        "ainvoke": lambda: asyncio.run(chain.ainvoke({"a": 1}, callbacks=[rec])),
        "call": lambda: chain({"a": 1}, callbacks=[rec]),
        "acall": lambda: asyncio.run(chain.acall({"a": 1}, callbacks=[rec])),
        "stream": lambda: list(chain.stream({"a": 1}, callbacks=[rec])),
        "astream": lambda: asyncio.run(consume()),
    }
    with pytest.raises(ValueError, match=r"missing input key\(s\) \['b'\]"):
        calls[how]()
    assert rec.names() == ["on_chain_start", "on_chain_error"]
    assert rec.of("on_chain_start")[0].args[1] == {"a": 1}
    error = rec.of("on_chain_error")[0].args[0]
    assert isinstance(error, ValueError) and "'b'" in str(error)
    (span,) = memory_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert "missing input key" in (span.status.description or "")
    assert [e.name for e in span.events] == ["exception"]


# -- batch_size ----------------------------------------------------------------------------


def _batch_sizes(rec: Recorder, event: str) -> list[int]:
    return [e.kwargs["batch_size"] for e in rec.of(event)]


def test_batch_size_as_langchain_core_reports_it() -> None:
    lc_chat, lc_llm, lc_batch = LcTokens(), LcTokens(), LcTokens()
    LcFakeChat(responses=["x"]).batch(["a", "b", "c"], config={"callbacks": [lc_chat]})
    LcFakeListLLM(responses=["x"]).generate(["a", "b", "c"], callbacks=[lc_llm])
    LcFakeListLLM(responses=["x"]).batch(["a", "b", "c"], config={"callbacks": [lc_batch]})
    assert [s["batch_size"] for s in lc_chat.starts] == [1, 1, 1]
    assert [s["batch_size"] for s in lc_llm.starts] == [3, 3, 3]
    assert [s["batch_size"] for s in lc_batch.starts] == [3, 3, 3]

    chat, achat, gen, agen, batch, abatch = (Recorder() for _ in range(6))
    FakeListChatModel(["x"]).batch(["a", "b", "c"], callbacks=[chat])
    asyncio.run(FakeListChatModel(["x"]).abatch(["a", "b", "c"], callbacks=[achat]))
    FakeListLLM(["x"]).generate(["a", "b", "c"], callbacks=[gen])
    asyncio.run(FakeListLLM(["x"]).agenerate(["a", "b", "c"], callbacks=[agen]))
    FakeListLLM(["x"]).batch(["a", "b", "c"], callbacks=[batch])
    asyncio.run(FakeListLLM(["x"]).abatch(["a", "b", "c"], callbacks=[abatch]))
    assert _batch_sizes(chat, "on_chat_model_start") == [1, 1, 1]
    assert _batch_sizes(achat, "on_chat_model_start") == [1, 1, 1]
    for rec in (gen, agen, batch, abatch):
        assert _batch_sizes(rec, "on_llm_start") == [3, 3, 3]


def test_llm_batch_in_groups_of_max_concurrency_reports_each_group_size() -> None:
    lc = LcTokens()
    LcFakeListLLM(responses=["x"]).batch(
        ["a", "b", "c"], config={"callbacks": [lc], "max_concurrency": 2}
    )
    rec = Recorder()
    FakeListLLM(["x"]).batch(["a", "b", "c"], config={"max_concurrency": 2}, callbacks=[rec])
    assert sorted(_batch_sizes(rec, "on_llm_start")) == sorted(s["batch_size"] for s in lc.starts)
    assert sorted(_batch_sizes(rec, "on_llm_start")) == [1, 2, 2]


# -- chat-model input forms ------------------------------------------------------------------


def test_message_list_items_are_read_as_langchain_core_reads_them() -> None:
    items: list[Any] = [
        "hello",
        ("ai", "hi there"),
        {"role": "user", "content": "and you?"},
        ("system", "be brief"),
    ]
    expected = [type(m).__name__ for m in convert_to_messages(items)]
    rec = Recorder()
    FakeListChatModel(["ok"]).invoke(items, callbacks=[rec])
    (messages,) = rec.of("on_chat_model_start")[0].args[1]
    assert [type(m).__name__ for m in messages] == expected
    assert [m.content for m in messages] == ["hello", "hi there", "and you?", "be brief"]


@pytest.mark.parametrize(
    "item", [42, ("human", "a", "b"), {"content": "no role"}], ids=["int", "triple", "no-role"]
)
def test_message_items_langchain_core_rejects_are_rejected_with_its_errors(item: Any) -> None:
    with pytest.raises(Exception) as lc_error:
        convert_to_messages([item])
    rec = Recorder()
    with pytest.raises(type(lc_error.value)) as ours:
        FakeListChatModel(["ok"]).invoke([item], callbacks=[rec])
    first_line = str(lc_error.value).splitlines()[0]
    assert str(ours.value).splitlines()[0] == first_line
    assert rec.events == []  # rejected before the run


# -- tools -----------------------------------------------------------------------------------


def test_tool_start_inputs_as_langchain_core_passes_them() -> None:
    @lc_tool
    def lc_echo(text: str) -> str:
        """echoes"""
        return text

    lc = LcTokens()
    lc_echo.invoke("hi", config={"callbacks": [lc]})
    lc_echo.invoke({"text": "hi"}, config={"callbacks": [lc]})
    assert [s["inputs"] for s in lc.starts] == [None, {"text": "hi"}]

    def echo(text: str) -> str:
        return text

    rec = Recorder()
    tool = Tool(name="echo", func=echo, description="echoes")
    tool.invoke("hi", config={"callbacks": [rec]})
    tool.invoke({"text": "hi"}, config={"callbacks": [rec]})
    asyncio.run(tool.ainvoke("hi", config={"callbacks": [rec]}))
    starts = rec.of("on_tool_start")
    assert [s.kwargs["inputs"] for s in starts] == [None, {"text": "hi"}, None]
    assert [s.args[1] for s in starts] == ["hi", "{'text': 'hi'}", "hi"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tool_function_declaring_callbacks_gets_the_child_callbacks(
    mode: str, memory_exporter: InMemorySpanExporter
) -> None:
    inner = LLMChain(llm=FakeListLLM(["inner"]), prompt=PromptTemplate.from_template("{q}"))
    received: list[Any] = []
    runs: list[Any] = []

    def lookup(query: str, callbacks: Any = None, run_manager: Any = None) -> str:
        received.append(callbacks)
        runs.append(run_manager)
        return str(inner.run(query, callbacks=callbacks))

    tool = Tool(name="lookup", func=lookup, description="looks up")
    rec = Recorder()
    if mode == "sync":
        assert tool.run("x", callbacks=[rec]) == "inner"
    else:
        assert asyncio.run(tool.arun("x", callbacks=[rec])) == "inner"
    (run,) = runs
    assert received == [run.get_child()]
    # the nested chain is a child of the tool run, seen once by the request handler
    tool_start = rec.of("on_tool_start")[0]
    chain_start = rec.of("on_chain_start")
    assert len(chain_start) == 1
    assert chain_start[0].parent_run_id == tool_start.run_id
    assert rec.names().count("on_llm_start") == 1


# -- run managers as langchain-core hands them to hooks ----------------------------------------


class Narrating(LLM):
    """Reports text from its sync and async hooks, as langchain-core code does."""

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        run_manager.on_text("sync hook")
        return "done"

    async def _acall(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> str:
        await run_manager.on_text("async hook")
        assert run_manager.get_sync().run_id == run_manager.run_id
        return "done"


class NarratingChat(BaseChatModel):
    """Only a sync ``_generate``: its async twin runs it with the sync run manager."""

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        run_manager.on_text("sync hook")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="done"))])


@pytest.mark.parametrize("model", [Narrating, NarratingChat])
def test_hooks_get_the_run_manager_langchain_core_gives_them(model: Any) -> None:
    sync_rec, async_rec = Recorder(), Recorder()
    model().invoke("q", callbacks=[sync_rec])
    asyncio.run(model().ainvoke("q", callbacks=[async_rec]))
    assert [e.args[0] for e in sync_rec.of("on_text")] == ["sync hook"]
    expected = "async hook" if model is Narrating else "sync hook"
    assert [e.args[0] for e in async_rec.of("on_text")] == [expected]
    (text,) = async_rec.of("on_text")
    assert text.run_id == async_rec.of("on_llm_end")[0].run_id
