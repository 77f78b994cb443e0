"""langchain-core and LangGraph runs: the sync and async requests record the same spans on
failure paths.

langchain-core runs sync bodies and async bodies through different code (its own twins),
and spanhook hooks both sides (``langchain/bodies.py`` wraps each twin). Here each failure
path runs once sync and once async, and the two must raise the same error (or return the
same value) and record the same spans: names, parent links, attributes, span events (an
``exception`` event by type and message) and status with its description. Values that
legitimately differ between two runs (ids, timings, checkpoint ids) are masked.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableGenerator, RunnableLambda
from langchain_core.tools import StructuredTool, ToolException, tool
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lc_app import build_approval_graph
from test_async import AsyncCall, SyncCall, _collect_async
from test_twins_failures import outcome

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")

_VOLATILE_KEYS = {"spanhook.run_id", "gen_ai.response.time_to_first_chunk"}
_EXCEPTION_KEEP = {"exception.type", "exception.message", "exception.escaped"}
_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _IDS.sub("<id>", value)
    if isinstance(value, tuple):
        return tuple(_mask(v) for v in value)
    return value


def _attrs(attributes: Any, keep: set[str] | None = None) -> dict[str, Any]:
    return {
        k: _mask(v)
        for k, v in dict(attributes or {}).items()
        if k not in _VOLATILE_KEYS and (keep is None or k in keep)
    }


def spans(exporter: InMemorySpanExporter) -> list[tuple[Any, ...]]:
    """Each finished span in a comparable form, with its parent's name."""
    finished = exporter.get_finished_spans()
    names = {s.context.span_id: s.name for s in finished if s.context is not None}

    def form(s: ReadableSpan) -> tuple[Any, ...]:
        events = [
            (e.name, _attrs(e.attributes, _EXCEPTION_KEEP if e.name == "exception" else None))
            for e in s.events
        ]
        parent = names.get(s.parent.span_id) if s.parent is not None else None
        status = (s.status.status_code, _mask(s.status.description))
        return (s.name, parent, _attrs(s.attributes), events, status)

    return sorted((form(s) for s in finished), key=repr)


# -- the apps ---------------------------------------------------------------------------------


def _refuse(x: str) -> str:
    raise ValueError(f"refused {x}")


def _pick(x: str) -> str:
    if "bad" in x:
        raise ValueError(f"refused {x}")
    return x.upper()


class BrokenRetriever(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        raise LookupError(f"index missing for {query}")


@tool
def lookup(item: str) -> str:
    """Look an item up."""
    raise RuntimeError(f"inventory down for {item}")


def _no_stock(item: str) -> str:
    """Look an item up, reporting failures to the model."""
    raise ToolException(f"no stock data for {item}")


handled = StructuredTool.from_function(_no_stock, name="handled", handle_tool_error=True)


def _fails_after_one(chunks: Iterator[Any]) -> Iterator[str]:
    for chunk in chunks:
        yield str(chunk.content).upper()
        raise ConnectionError("stream dropped")


async def _afails_after_one(chunks: AsyncIterator[Any]) -> AsyncIterator[str]:
    async for chunk in chunks:
        yield str(chunk.content).upper()
        raise ConnectionError("stream dropped")


def _story_chain() -> Any:
    prompt = ChatPromptTemplate.from_messages([("human", "tell me about {topic}")])
    model = FakeListChatModel(responses=["once upon a time there was a cat"])
    return prompt | model | RunnableGenerator(_fails_after_one, _afails_after_one)


def _streaming_chain() -> Any:
    prompt = ChatPromptTemplate.from_messages([("human", "tell me about {topic}")])
    return prompt | FakeListChatModel(responses=["once upon a time"])


refuse = RunnableLambda(_refuse, name="refuse")
pick = RunnableLambda(_pick, name="pick")
refuse_chain = RunnableLambda(lambda x: f"<{x}>", name="wrap") | refuse
tool_call = {"name": "handled", "args": {"item": "cats"}, "id": "call_7", "type": "tool_call"}


def _graph(fail: bool) -> tuple[SyncCall, AsyncCall]:
    """A request to a fresh approval graph (its own checkpointer), sync and async."""
    state, config = {"item": "x", "answer": ""}, {"configurable": {"thread_id": "refund"}}

    def call(cbs: list[Any]) -> Any:
        return build_approval_graph(name="approval", fail=fail).invoke(state, config)

    async def acall(cbs: list[Any]) -> Any:
        return await build_approval_graph(name="approval", fail=fail).ainvoke(state, config)

    return call, acall


def _first_then_close(make: Callable[[], Any]) -> SyncCall:
    def call(cbs: list[Any]) -> Any:
        stream = make()
        first = next(stream)
        stream.close()
        return first

    return call


def _afirst_then_close(make: Callable[[], Any]) -> AsyncCall:
    async def call(cbs: list[Any]) -> Any:
        stream = make()
        first = await stream.__anext__()
        await stream.aclose()
        return first

    return call


FAILURES: dict[str, tuple[SyncCall, AsyncCall]] = {
    "lambda raises": (
        lambda cb: refuse.invoke("x"),
        lambda cb: refuse.ainvoke("x"),
    ),
    "sequence, second step raises": (
        lambda cb: refuse_chain.invoke("x"),
        lambda cb: refuse_chain.ainvoke("x"),
    ),
    "batch returns its errors": (
        lambda cb: pick.batch(["ok", "bad", "fine"], return_exceptions=True),
        lambda cb: pick.abatch(["ok", "bad", "fine"], return_exceptions=True),
    ),
    "tool raises": (
        lambda cb: lookup.invoke({"item": "cats"}),
        lambda cb: lookup.ainvoke({"item": "cats"}),
    ),
    "tool error handled as a message": (
        lambda cb: handled.invoke(tool_call),
        lambda cb: handled.ainvoke(tool_call),
    ),
    "retriever raises": (
        lambda cb: BrokenRetriever().invoke("red"),
        lambda cb: BrokenRetriever().ainvoke("red"),
    ),
    "stream fails mid-way": (
        lambda cb: list(_story_chain().stream({"topic": "cats"})),
        _collect_async(lambda cb: _story_chain().astream({"topic": "cats"})),
    ),
    "stream closed early": (
        _first_then_close(lambda: _streaming_chain().stream({"topic": "cats"})),
        _afirst_then_close(lambda: _streaming_chain().astream({"topic": "cats"})),
    ),
    "graph node raises": _graph(fail=True),
    "graph pauses on interrupt()": _graph(fail=False),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_async_request_records_the_same_spans_as_the_sync_one(
    name: str, traced: InMemorySpanExporter
) -> None:
    sync_call, async_call = FAILURES[name]
    sync_out = outcome(lambda: sync_call([]), _mask)
    sync_spans = spans(traced)
    traced.clear()
    async_out = outcome(lambda: asyncio.run(async_call([])), _mask)  # type: ignore[arg-type]

    assert async_out == sync_out
    assert sync_spans, "the sync request recorded no span"
    assert spans(traced) == sync_spans
    assert EXPECTED[name] <= _signals(sync_spans), "the failure is not on the spans"


#: What each case must show on its spans (error types, marks, events), besides parity.
EXPECTED: dict[str, set[str]] = {
    "lambda raises": {"error.type=ValueError"},
    "sequence, second step raises": {"error.type=ValueError"},
    "batch returns its errors": {"error.type=ValueError"},
    "tool raises": {"error.type=RuntimeError"},
    "tool error handled as a message": {"error.type=tool_error"},
    "retriever raises": {"error.type=LookupError"},
    "stream fails mid-way": {"error.type=ConnectionError", "spanhook.stream.closed_early"},
    "stream closed early": {"spanhook.stream.closed_early"},
    "graph node raises": {"error.type=ValueError"},
    "graph pauses on interrupt()": {"spanhook.graph.interrupt", "spanhook.graph.paused"},
}


def _signals(recorded: list[tuple[Any, ...]]) -> set[str]:
    out: set[str] = set()
    for _name, _parent, attrs, events, _status in recorded:
        if "error.type" in attrs:
            out.add(f"error.type={attrs['error.type']}")
        if attrs.get("spanhook.stream.closed_early"):
            out.add("spanhook.stream.closed_early")
        out.update(e[0] for e in events)
    return out
