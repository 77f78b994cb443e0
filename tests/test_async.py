"""Async twins and async dispatch, with real asyncio tasks and real threads.

- every async request method gives the same events, kwargs and parent links as its sync twin;
- ``AsyncCallbackHandler`` coroutines are awaited in async runs, and run to completion, in
  order, when such a handler is given to a sync run (with or without a running loop);
- sync handlers in async runs: ``run_inline`` ones on the loop thread, in list order, before
  the others; the others in worker threads, never blocking the loop;
- per handler, events arrive in the run's order;
- ``raise_error`` in an async handler propagates out of ``ainvoke``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import spanhook
from helpers import AsyncRecorder, Event, Recorder
from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.chains import Chain, LLMChain, SimpleSequentialChain
from spanhook.chat_models import OfflineChatModel
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.retrievers import InMemoryRetriever
from spanhook.tools import Tool

# -- canonical form of what a handler saw ----------------------------------------------------


def _norm(value: Any) -> Any:
    """A comparable form of an event argument: run ids dropped, exceptions by type and text,
    dataclasses (results, chunks, messages, actions) field by field."""
    if isinstance(value, uuid.UUID):
        return "<uuid>"
    if isinstance(value, BaseException):
        return ("<exc>", type(value).__name__, str(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, _norm(dataclasses.asdict(value)))
    if isinstance(value, dict):
        return tuple(sorted((str(k), _norm(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return (type(value).__name__, repr(value))


def run_tree(events: list[Event]) -> tuple[Any, ...]:
    """The runs a handler saw as a tree (children sorted), each node the run's events in
    order with run ids stripped. Also checks every parent link points to a run the handler
    saw, and every root has no parent."""
    by_run: dict[uuid.UUID, list[Event]] = defaultdict(list)
    parent: dict[uuid.UUID, uuid.UUID | None] = {}
    order: list[uuid.UUID] = []
    for e in events:
        rid = e.run_id
        if rid not in by_run:
            order.append(rid)
            parent[rid] = e.parent_run_id
        by_run[rid].append(e)
        if "parent_run_id" in e.kwargs:
            assert e.parent_run_id == parent[rid], (
                "a run's parent_run_id changed between its events"
            )
    for rid in order:
        p = parent[rid]
        assert p is None or p in by_run, f"run {rid} has parent {p} the handler never saw"

    def node(rid: uuid.UUID) -> tuple[Any, ...]:
        evs = tuple(
            (
                e.event,
                _norm(e.args),
                _norm({k: v for k, v in e.kwargs.items() if k not in ("run_id", "parent_run_id")}),
            )
            for e in by_run[rid]
        )
        kids = sorted((node(c) for c in order if parent[c] == rid), key=repr)
        return (evs, tuple(kids))

    return tuple(sorted((node(r) for r in order if parent[r] is None), key=repr))


# -- apps ------------------------------------------------------------------------------------


class Shout(Chain):
    """A chain with only a sync ``_call`` (its async twin runs it in a worker thread)."""

    input_keys: ClassVar[list[str]] = ["text"]
    output_keys: ClassVar[list[str]] = ["loud"]

    def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        if run_manager is not None:
            run_manager.on_text("shouting")
        return {"loud": str(inputs["text"]).upper()}


def _llm_chain() -> LLMChain:
    return LLMChain(
        llm=OfflineLLM(tags=["model"]),
        prompt=PromptTemplate.from_template("{a} + {b} = "),
        tags=["chain"],
        metadata={"app": "twins"},
    )


def _broken_tool() -> Tool:
    def explode(x: str) -> str:
        raise ValueError(f"cannot handle {x}")

    return Tool(name="explode", func=explode, description="always fails")


SyncCall = Callable[[list[Any]], Any]
AsyncCall = Callable[[list[Any]], Awaitable[Any]]


def _collect_async(agen_factory: Callable[[list[Any]], Any]) -> AsyncCall:
    async def run(cbs: list[Any]) -> Any:
        return [c async for c in agen_factory(cbs)]

    return run


chain = _llm_chain()
chat = OfflineChatModel()
llm = OfflineLLM()
agent = AgentExecutor(llm=OfflineLLM(), tools=[calculator_tool()])
seq = SimpleSequentialChain(chains=[Shout(), Shout()])
retriever = InMemoryRetriever(["red apples", "green pears", "red cherries"], k=2)
calc = calculator_tool()
broken = _broken_tool()
shout = Shout()

TWINS: dict[str, tuple[SyncCall, AsyncCall]] = {
    "chain.invoke": (
        lambda cb: chain.invoke({"a": 1, "b": 2}, {"callbacks": cb, "tags": ["req"]}),
        lambda cb: chain.ainvoke({"a": 1, "b": 2}, {"callbacks": cb, "tags": ["req"]}),
    ),
    "chain.run": (
        lambda cb: chain.run(a=2, b=3, callbacks=cb, metadata={"r": 1}),
        lambda cb: chain.arun(a=2, b=3, callbacks=cb, metadata={"r": 1}),
    ),
    "chain.__call__": (
        lambda cb: chain({"a": 3, "b": 4}, callbacks=cb, run_name="named"),
        lambda cb: chain.acall({"a": 3, "b": 4}, callbacks=cb, run_name="named"),
    ),
    "chain.apply": (
        lambda cb: chain.apply([{"a": 1, "b": 1}, {"a": 2, "b": 2}], callbacks=cb),
        lambda cb: chain.aapply([{"a": 1, "b": 1}, {"a": 2, "b": 2}], callbacks=cb),
    ),
    "chain.batch": (
        lambda cb: chain.batch(
            [{"a": 5, "b": 1}, {"a": 6, "b": 1}, {"a": 7, "b": 1}], callbacks=cb
        ),
        lambda cb: chain.abatch(
            [{"a": 5, "b": 1}, {"a": 6, "b": 1}, {"a": 7, "b": 1}], callbacks=cb
        ),
    ),
    "chain.predict": (
        lambda cb: chain.predict(callbacks=cb, a=8, b=9),
        lambda cb: chain.apredict(callbacks=cb, a=8, b=9),
    ),
    "chain.stream": (
        lambda cb: list(chain.stream({"a": 10, "b": 5}, callbacks=cb)),
        _collect_async(lambda cb: chain.astream({"a": 10, "b": 5}, callbacks=cb)),
    ),
    "sync-only chain": (
        lambda cb: shout.invoke("hi", callbacks=cb),
        lambda cb: shout.ainvoke("hi", callbacks=cb),
    ),
    "sequential": (
        lambda cb: seq.run("abc", callbacks=cb),
        lambda cb: seq.arun("abc", callbacks=cb),
    ),
    "llm.invoke": (
        lambda cb: llm.invoke("2 * 21 = ", callbacks=cb, tags=["t"]),
        lambda cb: llm.ainvoke("2 * 21 = ", callbacks=cb, tags=["t"]),
    ),
    "llm.predict": (
        lambda cb: llm.predict("say hi", callbacks=cb),
        lambda cb: llm.apredict("say hi", callbacks=cb),
    ),
    "llm.generate": (
        lambda cb: llm.generate(["1 + 1 = ", "hello"], callbacks=cb),
        lambda cb: llm.agenerate(["1 + 1 = ", "hello"], callbacks=cb),
    ),
    "llm.batch": (
        lambda cb: llm.batch(["1 + 2 = ", "3 + 4 = "], callbacks=cb),
        lambda cb: llm.abatch(["1 + 2 = ", "3 + 4 = "], callbacks=cb),
    ),
    "llm.stream": (
        lambda cb: list(llm.stream("tell me a story", callbacks=cb)),
        _collect_async(lambda cb: llm.astream("tell me a story", callbacks=cb)),
    ),
    "chat.invoke": (
        lambda cb: chat.invoke("hi there", callbacks=cb),
        lambda cb: chat.ainvoke("hi there", callbacks=cb),
    ),
    "chat.predict": (
        lambda cb: chat.predict("5 * 5 = ", callbacks=cb),
        lambda cb: chat.apredict("5 * 5 = ", callbacks=cb),
    ),
    "chat.batch": (
        lambda cb: chat.batch(["a", "b"], callbacks=cb),
        lambda cb: chat.abatch(["a", "b"], callbacks=cb),
    ),
    "chat.stream": (
        lambda cb: list(chat.stream("stream this please", callbacks=cb)),
        _collect_async(lambda cb: chat.astream("stream this please", callbacks=cb)),
    ),
    "tool.run": (
        lambda cb: calc.run("6 * 7", callbacks=cb),
        lambda cb: calc.arun("6 * 7", callbacks=cb),
    ),
    "tool.invoke": (
        lambda cb: calc.invoke("1 + 1", {"callbacks": cb}),
        lambda cb: calc.ainvoke("1 + 1", {"callbacks": cb}),
    ),
    "agent": (
        lambda cb: agent.invoke({"input": "What is 12 * 7?"}, callbacks=cb),
        lambda cb: agent.ainvoke({"input": "What is 12 * 7?"}, callbacks=cb),
    ),
    "retriever": (
        lambda cb: retriever.invoke("red", callbacks=cb),
        lambda cb: retriever.ainvoke("red", callbacks=cb),
    ),
    "retriever.get_relevant_documents": (
        lambda cb: retriever.get_relevant_documents("green", callbacks=cb),
        lambda cb: retriever.aget_relevant_documents("green", callbacks=cb),
    ),
}


@pytest.mark.parametrize("name", list(TWINS))
def test_async_twin_gives_the_same_events_kwargs_and_parent_links(
    name: str, memory_exporter: InMemorySpanExporter
) -> None:
    sync_call, async_call = TWINS[name]
    s_rec, s_arec = Recorder("sync"), AsyncRecorder("async")
    sync_out = sync_call([s_rec, s_arec])
    a_rec, a_arec = Recorder("sync"), AsyncRecorder("async")
    async_out = asyncio.run(async_call([a_rec, a_arec]))  # type: ignore[arg-type]

    assert _norm(async_out) == _norm(sync_out)
    sync_tree = run_tree(s_rec.events)
    assert sync_tree, "the sync twin delivered no events"
    assert run_tree(a_rec.events) == sync_tree
    # an async handler sees exactly what a sync handler sees, in both twins
    assert run_tree(s_arec.events) == sync_tree
    assert run_tree(a_arec.events) == sync_tree
    # and the handlers' parent links are the spans' parent links
    spans = memory_exporter.get_finished_spans()
    by_run = {s.attributes["spanhook.run_id"]: s for s in spans}  # type: ignore[index]
    by_span = {s.context.span_id: s for s in spans}  # type: ignore[union-attr]
    for e in s_rec.events + a_rec.events:
        span = by_run[str(e.run_id)]
        if e.parent_run_id is None:
            assert span.parent is None
        else:
            assert span.parent is not None
            assert by_span[span.parent.span_id].attributes["spanhook.run_id"] == str(
                e.parent_run_id
            )  # type: ignore[index]


def test_async_twin_error_path_matches() -> None:
    """A failing tool inside a chain: the same error events in both twins."""

    class UsesTool(Chain):
        input_keys: ClassVar[list[str]] = ["x"]
        output_keys: ClassVar[list[str]] = ["y"]

        def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
            return {"y": broken.run(inputs["x"])}

        async def _acall(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
            return {"y": await broken.arun(inputs["x"])}

    c = UsesTool()
    s = Recorder()
    with pytest.raises(ValueError, match="cannot handle boom"):
        c.invoke({"x": "boom"}, callbacks=[s])
    a = Recorder()
    with pytest.raises(ValueError, match="cannot handle boom"):
        asyncio.run(c.ainvoke({"x": "boom"}, callbacks=[a]))
    assert s.names() == ["on_chain_start", "on_tool_start", "on_tool_error", "on_chain_error"]
    assert run_tree(a.events) == run_tree(s.events)


# -- AsyncCallbackHandler --------------------------------------------------------------------


class Journal:
    """A shared, thread-safe log of (who, what, event, thread id)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, str, str, int]] = []

    def add(self, who: str, what: str, event: str) -> None:
        with self.lock:
            self.items.append((who, what, event, threading.get_ident()))

    def of(self, who: str, what: str = "done") -> list[str]:
        return [e for w, x, e, _ in self.items if w == who and x == what]


def _async_journal_handler(
    journal: Journal, who: str, pause: Callable[[str], float]
) -> AsyncCallbackHandler:
    class Slow(AsyncCallbackHandler):
        pass

    def make(event: str) -> Any:
        async def method(self: Any, *args: Any, **kwargs: Any) -> None:
            journal.add(who, "begin", event)
            await asyncio.sleep(pause(event))
            journal.add(who, "done", event)

        return method

    from spanhook.events import EVENTS

    for ev in EVENTS:
        setattr(Slow, ev, make(ev))
    return Slow()


def _sync_journal_handler(
    journal: Journal, who: str, pause: Callable[[str], float], inline: bool = False
) -> BaseCallbackHandler:
    class Blocking(BaseCallbackHandler):
        run_inline = inline

    def make(event: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> None:
            journal.add(who, "begin", event)
            time.sleep(pause(event))
            journal.add(who, "done", event)

        return method

    from spanhook.events import EVENTS

    for ev in EVENTS:
        setattr(Blocking, ev, make(ev))
    return Blocking()


STREAM_ORDER = ["on_chain_start", "on_text", "on_llm_start"]


def _expected_stream_events(tokens: int) -> list[str]:
    return [*STREAM_ORDER, *["on_llm_new_token"] * tokens, "on_llm_end", "on_chain_end"]


def test_async_handler_coroutines_are_awaited_in_async_runs() -> None:
    journal = Journal()
    # slower on early events: if the dispatch did not await, later events would overtake
    h = _async_journal_handler(journal, "a", lambda ev: 0.03 if ev.endswith("start") else 0.0)
    c = LLMChain(llm=OfflineLLM(streaming=True), prompt=PromptTemplate.from_template("say {w}"))

    async def main() -> tuple[str, int]:
        out = await c.arun(w="one two three", callbacks=[h])
        return out, threading.get_ident()

    out, loop_thread = asyncio.run(main())
    tokens = len(out.split())
    assert journal.of("a") == _expected_stream_events(tokens)
    assert journal.of("a", "begin") == journal.of("a")
    # awaited on the loop thread (not handed to some other loop)
    assert {t for w, _, _, t in journal.items if w == "a"} == {loop_thread}
    # each coroutine finished before the next event began
    seq = [(x, e) for w, x, e, _ in journal.items if w == "a"]
    assert all(
        seq[i][0] == "begin" and seq[i + 1] == ("done", seq[i][1]) for i in range(0, len(seq), 2)
    )


@pytest.mark.parametrize(
    "inside_loop", [False, True], ids=["no-loop", "called-from-a-running-loop"]
)
def test_async_handler_in_sync_run_runs_to_completion_in_order(inside_loop: bool) -> None:
    journal = Journal()
    slow = _async_journal_handler(journal, "a", lambda ev: 0.02 if ev.endswith("start") else 0.001)
    after = _sync_journal_handler(journal, "s", lambda ev: 0.0)
    c = LLMChain(llm=OfflineLLM(streaming=True), prompt=PromptTemplate.from_template("say {w}"))

    def call() -> str:
        out = c.run(w="alpha beta", callbacks=[slow, after])
        # every coroutine ran to completion before the sync request returned
        assert len(journal.of("a")) == len(journal.of("a", "begin"))
        return str(out)

    if inside_loop:

        async def main() -> str:
            return call()  # a sync request made from async code must not deadlock the loop

        out = asyncio.run(main())
    else:
        out = call()
    expected = _expected_stream_events(len(out.split()))
    assert journal.of("a") == expected
    assert journal.of("s") == expected
    # strictly sequential, in list order: the async handler finishes an event before the sync
    # handler gets it, and the next event starts only after both
    seq = [(w, x, e) for w, x, e, _ in journal.items]
    want = [
        t
        for ev in expected
        for t in (("a", "begin", ev), ("a", "done", ev), ("s", "begin", ev), ("s", "done", ev))
    ]
    assert seq == want


def test_sync_handlers_in_async_runs_inline_first_on_loop_others_in_threads() -> None:
    journal = Journal()
    first_inline = _sync_journal_handler(journal, "inline1", lambda ev: 0.0, inline=True)
    threaded = _sync_journal_handler(journal, "thread", lambda ev: 0.005)
    coro = _async_journal_handler(journal, "coro", lambda ev: 0.005)
    second_inline = _sync_journal_handler(journal, "inline2", lambda ev: 0.0, inline=True)
    c = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("say {w}"))

    async def main() -> int:
        await c.arun(w="x", callbacks=[threaded, coro, first_inline, second_inline])
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    expected = ["on_chain_start", "on_text", "on_llm_start", "on_llm_end", "on_chain_end"]
    for who in ("inline1", "thread", "coro", "inline2"):
        assert journal.of(who) == expected, who
    threads = {
        w: {t for ww, _, _, t in journal.items if ww == w} for w in ("inline1", "inline2", "thread")
    }
    assert threads["inline1"] == threads["inline2"] == {loop_thread}
    assert loop_thread not in threads["thread"]
    # per event: both inline handlers, in list order, before any other handler begins
    for ev in expected:
        whos = [(w, x) for w, x, e, _ in journal.items if e == ev]
        assert whos[:4] == [
            ("inline1", "begin"),
            ("inline1", "done"),
            ("inline2", "begin"),
            ("inline2", "done"),
        ]
        assert {w for w, _ in whos[4:]} == {"thread", "coro"}


def test_sync_handler_never_blocks_the_event_loop() -> None:
    ticks = 0
    seen: dict[str, int] = {}

    class Sleepy(BaseCallbackHandler):
        def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
            seen["before"] = ticks
            time.sleep(0.2)
            seen["after"] = ticks

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.005)
            ticks += 1

    async def main() -> None:
        stop = asyncio.Event()
        t = asyncio.create_task(ticker(stop))
        await asyncio.sleep(0.01)
        await Shout().ainvoke("x", callbacks=[Sleepy()])
        stop.set()
        await t

    asyncio.run(main())
    assert seen["after"] > seen["before"], "the loop did not run while the sync handler slept"


def test_run_inline_sync_handler_sees_the_run_context_and_others_see_a_copy() -> None:
    """run_inline handlers run on the loop in the run's context; threaded ones get a copy of
    it (the current run is the run being reported)."""
    seen: dict[str, Any] = {}

    class Inline(BaseCallbackHandler):
        run_inline = True

        def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
            r = spanhook.current_run()
            seen["inline"] = (r.run_id if r else None, kwargs["run_id"])

    class Threaded(BaseCallbackHandler):
        def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
            r = spanhook.current_run()
            seen["thread"] = (r.run_id if r else None, kwargs["run_id"])

    asyncio.run(_llm_chain().arun(a=1, b=1, callbacks=[Inline(), Threaded()]))
    assert seen["inline"][0] == seen["inline"][1]
    assert seen["thread"][0] == seen["thread"][1]


def test_per_handler_events_arrive_in_run_order_with_uneven_handler_latency() -> None:
    """Three concurrent async requests share one slow coroutine handler and one slow sync
    (threaded) handler; early events take longest to deliver, yet each handler's view of
    each run is in the run's order, and no event overtakes the previous one."""
    pause = {
        "on_chain_start": 0.03,
        "on_text": 0.02,
        "on_llm_start": 0.02,
        "on_llm_new_token": 0.002,
    }

    class SlowAsync(AsyncCallbackHandler):
        def __init__(self) -> None:
            self.events: list[Event] = []

    class SlowSync(BaseCallbackHandler):
        def __init__(self) -> None:
            self.events: list[Event] = []

    def make_async(event: str) -> Any:
        async def method(self: Any, *args: Any, **kwargs: Any) -> None:
            await asyncio.sleep(pause.get(event, 0.0))
            self.events.append(Event("a", event, args, kwargs))

        return method

    def make_sync(event: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> None:
            time.sleep(pause.get(event, 0.0))
            self.events.append(Event("s", event, args, kwargs))

        return method

    for ev in (
        "on_chain_start",
        "on_text",
        "on_llm_start",
        "on_llm_new_token",
        "on_llm_end",
        "on_chain_end",
    ):
        setattr(SlowAsync, ev, make_async(ev))
        setattr(SlowSync, ev, make_sync(ev))
    slow_a, slow_s = SlowAsync(), SlowSync()
    c = LLMChain(llm=OfflineLLM(streaming=True), prompt=PromptTemplate.from_template("say {w}"))

    async def main() -> list[str]:
        return list(
            await asyncio.gather(
                *(c.arun(w=w, callbacks=[slow_a, slow_s]) for w in ("a b", "c d e", "f"))
            )
        )

    outs = asyncio.run(main())
    for h in (slow_a, slow_s):
        per_root: dict[uuid.UUID, list[str]] = defaultdict(list)
        root_of: dict[uuid.UUID, uuid.UUID] = {}
        for e in h.events:
            if e.run_id not in root_of:
                root_of[e.run_id] = root_of[e.parent_run_id] if e.parent_run_id else e.run_id
            per_root[root_of[e.run_id]].append(e.event)
        assert len(per_root) == 3
        got = sorted(per_root.values(), key=len)
        want = sorted((_expected_stream_events(len(o.split())) for o in outs), key=len)
        assert got == want


# -- raise_error ---------------------------------------------------------------------------


class Rejects(AsyncCallbackHandler):
    raise_error = True

    def __init__(self, event: str, error: BaseException) -> None:
        self.event = event
        self.error = error
        self.calls: list[str] = []

    async def _maybe(self, event: str) -> None:
        self.calls.append(event)
        await asyncio.sleep(0)
        if event == self.event:
            raise self.error

    async def on_chain_start(self, *a: Any, **k: Any) -> None:
        await self._maybe("on_chain_start")

    async def on_llm_start(self, *a: Any, **k: Any) -> None:
        await self._maybe("on_llm_start")

    async def on_llm_end(self, *a: Any, **k: Any) -> None:
        await self._maybe("on_llm_end")

    async def on_chain_end(self, *a: Any, **k: Any) -> None:
        await self._maybe("on_chain_end")

    async def on_llm_error(self, *a: Any, **k: Any) -> None:
        self.calls.append("on_llm_error")

    async def on_chain_error(self, *a: Any, **k: Any) -> None:
        self.calls.append("on_chain_error")


@pytest.mark.parametrize("event", ["on_chain_start", "on_llm_start", "on_llm_end", "on_chain_end"])
def test_raise_error_in_async_handler_propagates_from_ainvoke(
    event: str, memory_exporter: InMemorySpanExporter
) -> None:
    boom = RuntimeError(f"rejected at {event}")
    rejecting = Rejects(event, boom)
    other = Recorder()
    c = _llm_chain()
    with pytest.raises(RuntimeError) as info:
        asyncio.run(c.ainvoke({"a": 1, "b": 2}, callbacks=[rejecting, other]))
    assert info.value is boom
    # every run that started also ended (with an error), for every handler
    starts = [e for e in other.events if e.event.endswith("_start")]
    ends = [e for e in other.events if e.event.endswith(("_end", "_error"))]
    assert sorted(e.run_id for e in starts) == sorted(e.run_id for e in ends)
    assert len(ends) == len({e.run_id for e in ends})
    # the chain span is closed with ERROR status (the error reached the caller through it)
    spans = {s.name: s for s in memory_exporter.get_finished_spans()}
    assert spans["LLMChain"].status.status_code is StatusCode.ERROR
    assert spanhook.current_run() is None


def test_handler_exception_without_raise_error_does_not_break_async_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(AsyncCallbackHandler):
        async def on_llm_start(self, *a: Any, **k: Any) -> None:
            raise KeyError("handler bug")

    rec = Recorder()
    out = asyncio.run(_llm_chain().arun(a=20, b=22, callbacks=[Broken(), rec]))
    assert out == "42"
    assert rec.names() == [
        "on_chain_start",
        "on_text",
        "on_llm_start",
        "on_llm_end",
        "on_chain_end",
    ]
    assert any("Broken.on_llm_start" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(30)
def test_async_handler_making_a_nested_sync_run_does_not_deadlock() -> None:
    """An async handler's coroutine calls sync code that makes runs of its own, whose
    handlers (inherited) include that same async handler, two levels deep: every coroutine
    still runs to completion (a deadlock here fails by timeout)."""
    inner_tool = Tool(name="inner", func=lambda x: x, description="echo")
    outer_tool = Tool(name="outer", func=lambda x: inner_tool.run(x), description="calls inner")

    class Nesting(AsyncCallbackHandler):
        def __init__(self) -> None:
            self.events: list[str] = []
            self.triggered: set[str] = set()

        async def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
            self.events.append(f"on_chain_end:{outputs['loud']}")
            if "top" not in self.triggered:
                self.triggered.add("top")
                outer_tool.run("nested")  # sync code inside the coroutine

        async def on_tool_end(self, output: Any, **kwargs: Any) -> None:
            await asyncio.sleep(0)
            self.events.append(f"on_tool_end:{kwargs['name']}")
            if kwargs["name"] == "inner" and "deeper" not in self.triggered:
                self.triggered.add("deeper")
                Shout().run("deeper")  # and one level deeper still

    h = Nesting()
    assert Shout().run("x", callbacks=[h]) == "X"
    assert h.events == [
        "on_chain_end:X",
        "on_tool_end:inner",
        "on_chain_end:DEEPER",
        "on_tool_end:outer",
    ]
