"""Sync and async twins fail, stop and close the same way.

``test_async.py`` and ``test_runtime_twins.py`` compare the twins of every request method
when the request succeeds. This compares them where the two copies of a code path are most
likely to drift: a body that raises, retries that run out, a batch that returns its errors, a
stream that fails mid-way, a stream the consumer closes early, and an inner stream that
fails while it is closed. For each, the sync and the async request must raise the same
error (or return the same value), give sync and async handlers the same events in the same
run tree, and record the same spans: names, attributes, span events (an ``exception`` event
by type and message) and status with its description.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import AsyncRecorder, Recorder
from spanhook.agents import AgentExecutor
from spanhook.chains import Chain, LLMChain, SimpleSequentialChain
from spanhook.chat_models import SimpleChatModel
from spanhook.llms import LLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.retrievers import BaseRetriever
from spanhook.schema import Document
from spanhook.tools import Tool
from test_async import AsyncCall, Shout, SyncCall, _collect_async, run_tree
from test_runtime_twins import spans
from test_streaming import CloseFails


class BoomLLM(LLM):
    """Fails every call with ``ConnectionError`` (retryable)."""

    def _call(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kw: Any
    ) -> str:
        raise ConnectionError(f"down for {prompt!r}")


class PickyLLM(LLM):
    """Fails on prompts containing ``bad``; answers the others."""

    def _call(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kw: Any
    ) -> str:
        if "bad" in prompt:
            raise ValueError(f"refused {prompt!r}")
        return prompt.upper()


class BoomChat(SimpleChatModel):
    def _call(
        self, messages: Any, stop: list[str] | None = None, run_manager: Any = None, **kw: Any
    ) -> str:
        raise TimeoutError("chat model timed out")


class BrokenRetriever(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        raise LookupError(f"index missing for {query!r}")


class Fails(Chain):
    input_keys: ClassVar[list[str]] = ["loud"]
    output_keys: ClassVar[list[str]] = ["out"]

    def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        raise KeyError(f"no rule for {inputs['loud']}")


def _explode(expression: str) -> str:
    raise ArithmeticError(f"cannot evaluate {expression}")


def _chain(llm: Any) -> LLMChain:
    return LLMChain(llm=llm, prompt=PromptTemplate.from_template("{q}"))


boom = BoomLLM(max_retries=2)
picky = PickyLLM()
failing_stream = OfflineLLM(fail_after=2)
broken_calc = Tool(name="calculator", func=_explode, description="always fails")
agent = AgentExecutor(llm=OfflineLLM(), tools=[broken_calc])
seq = SimpleSequentialChain(chains=[Shout(), Fails()])


def _first_then_close(make: Callable[[list[Any]], Any]) -> SyncCall:
    def call(cbs: list[Any]) -> Any:
        stream = make(cbs)
        first = next(stream)
        stream.close()
        return first

    return call


def _afirst_then_close(make: Callable[[list[Any]], Any]) -> AsyncCall:
    async def call(cbs: list[Any]) -> Any:
        stream = make(cbs)
        first = await stream.__anext__()
        await stream.aclose()
        return first

    return call


def _drain(make: Callable[[list[Any]], Any]) -> SyncCall:
    return lambda cbs: list(make(cbs))


FAILURES: dict[str, tuple[SyncCall, AsyncCall]] = {
    "llm retries run out": (
        lambda cb: boom.invoke("x", callbacks=cb),
        lambda cb: boom.ainvoke("x", callbacks=cb),
    ),
    "llm.generate, one prompt fails": (
        lambda cb: picky.generate(["good", "bad"], callbacks=cb),
        lambda cb: picky.agenerate(["good", "bad"], callbacks=cb),
    ),
    "llm.batch returns its errors": (
        lambda cb: picky.batch(["ok", "bad", "fine"], callbacks=cb, return_exceptions=True),
        lambda cb: picky.abatch(["ok", "bad", "fine"], callbacks=cb, return_exceptions=True),
    ),
    "llm.stream fails mid-way": (
        _drain(lambda cb: failing_stream.stream("tell me a story", callbacks=cb)),
        _collect_async(lambda cb: failing_stream.astream("tell me a story", callbacks=cb)),
    ),
    "llm.stream closed early": (
        _first_then_close(lambda cb: OfflineLLM().stream("tell me a story", callbacks=cb)),
        _afirst_then_close(lambda cb: OfflineLLM().astream("tell me a story", callbacks=cb)),
    ),
    "chat.invoke fails": (
        lambda cb: BoomChat().invoke("hi", callbacks=cb),
        lambda cb: BoomChat().ainvoke("hi", callbacks=cb),
    ),
    "chat.stream fails before its first chunk": (
        _drain(lambda cb: BoomChat().stream("hi", callbacks=cb)),
        _collect_async(lambda cb: BoomChat().astream("hi", callbacks=cb)),
    ),
    "chain around a failing model": (
        lambda cb: _chain(BoomLLM()).invoke({"q": "x"}, callbacks=cb),
        lambda cb: _chain(BoomLLM()).ainvoke({"q": "x"}, callbacks=cb),
    ),
    "chain missing an input key": (
        lambda cb: _chain(OfflineLLM()).invoke({"other": 1}, callbacks=cb),
        lambda cb: _chain(OfflineLLM()).ainvoke({"other": 1}, callbacks=cb),
    ),
    "chain.stream around a failing stream": (
        _drain(lambda cb: _chain(failing_stream).stream({"q": "a story"}, callbacks=cb)),
        _collect_async(lambda cb: _chain(failing_stream).astream({"q": "a story"}, callbacks=cb)),
    ),
    "chain.stream closed early": (
        _first_then_close(lambda cb: _chain(OfflineLLM()).stream({"q": "story"}, callbacks=cb)),
        _afirst_then_close(lambda cb: _chain(OfflineLLM()).astream({"q": "story"}, callbacks=cb)),
    ),
    "chain.stream whose inner stream fails on close": (
        _first_then_close(lambda cb: CloseFails().stream({"q": "x"}, callbacks=cb)),
        _afirst_then_close(lambda cb: CloseFails().astream({"q": "x"}, callbacks=cb)),
    ),
    "chain.batch returns its errors": (
        lambda cb: seq.batch(["a", "b"], callbacks=cb, return_exceptions=True),
        lambda cb: seq.abatch(["a", "b"], callbacks=cb, return_exceptions=True),
    ),
    "sequential, second step fails": (
        lambda cb: seq.run("abc", callbacks=cb),
        lambda cb: seq.arun("abc", callbacks=cb),
    ),
    "tool.run fails": (
        lambda cb: broken_calc.run("1 / 0", callbacks=cb),
        lambda cb: broken_calc.arun("1 / 0", callbacks=cb),
    ),
    "tool.invoke fails": (
        lambda cb: broken_calc.invoke("1 / 0", {"callbacks": cb}),
        lambda cb: broken_calc.ainvoke("1 / 0", {"callbacks": cb}),
    ),
    "agent whose tool fails": (
        lambda cb: agent.invoke({"input": "What is 12 * 7?"}, callbacks=cb),
        lambda cb: agent.ainvoke({"input": "What is 12 * 7?"}, callbacks=cb),
    ),
    "retriever fails": (
        lambda cb: BrokenRetriever().invoke("red", callbacks=cb),
        lambda cb: BrokenRetriever().ainvoke("red", callbacks=cb),
    ),
}


def outcome(call: Callable[[], Any], text: Callable[[str], Any] = str) -> Any:
    """What a request gave: its value (as ``text`` of its repr), or its exception by type and
    message, also inside a returned list (as ``return_exceptions`` gives them)."""

    def form(value: Any) -> Any:
        if isinstance(value, BaseException):
            return ("raised", type(value).__name__, str(value))
        if isinstance(value, list):
            return [form(v) for v in value]
        return text(repr(value))

    try:
        return form(call())
    except Exception as e:
        return form(e)


@pytest.mark.parametrize("name", list(FAILURES))
def test_async_twin_fails_stops_and_closes_like_the_sync_one(
    name: str, memory_exporter: InMemorySpanExporter
) -> None:
    sync_call, async_call = FAILURES[name]
    s_rec, s_arec = Recorder("sync"), AsyncRecorder("async")
    sync_out = outcome(lambda: sync_call([s_rec, s_arec]))
    sync_spans = spans(memory_exporter)
    memory_exporter.clear()
    a_rec, a_arec = Recorder("sync"), AsyncRecorder("async")
    async_out = outcome(lambda: asyncio.run(async_call([a_rec, a_arec])))  # type: ignore[arg-type]

    assert async_out == sync_out
    sync_tree = run_tree(s_rec.events)
    assert sync_tree, "the sync twin delivered no events"
    assert run_tree(a_rec.events) == sync_tree
    assert run_tree(s_arec.events) == sync_tree
    assert run_tree(a_arec.events) == sync_tree
    assert sync_spans, "the sync twin recorded no span"
    assert spans(memory_exporter) == sync_spans
