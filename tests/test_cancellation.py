"""Cancellation and interrupts, with real asyncio tasks.

An asyncio task cancelled mid-run (inside a slow model call, or mid-``astream``) ends every
open span with ERROR status and calls ``on_*_error`` exactly once per run, never
``on_*_end``; afterwards nothing of the cancelled run is left in the context: the next run in
the same task is a new root with a fresh trace. A ``KeyboardInterrupt`` inside a tool in a
sync run ends every span and reports ``on_tool_error`` and ``on_chain_error`` once each.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import spanhook
from helpers import AsyncRecorder, Event, Recorder
from spanhook.agents import AgentExecutor
from spanhook.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.chains import LLMChain
from spanhook.llms import LLM, FakeListLLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.schema import GenerationChunk, LLMResult
from spanhook.tools import Tool

needs_timeout = pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")


class SlowSyncLLM(LLM):
    """A model with only a blocking ``_call``: its async twin runs it in a worker thread."""

    def _call(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> str:
        time.sleep(0.3)
        return "late"


class StartSignal(AsyncCallbackHandler):
    """Sets an asyncio event when a given start event arrives (awaited on the loop)."""

    run_inline = True

    def __init__(self, event: str = "on_llm_start") -> None:
        self.when = event
        self.fired = asyncio.Event()

    async def on_llm_start(self, *a: Any, **k: Any) -> None:
        if self.when == "on_llm_start":
            self.fired.set()


def assert_each_run_ended_once_with_error(rec: Any, spans: list[Any]) -> None:
    """Every run the handler saw started once and ended once, with an error (never an end
    event), with a CancelledError; and its span ended with ERROR status."""
    events: list[Event] = rec.events
    starts = [e for e in events if e.event.endswith("_start")]
    assert starts
    for s in starts:
        mine = [e.event for e in events if e.run_id == s.run_id]
        finals = [n for n in mine if n.endswith(("_end", "_error"))]
        assert len(finals) == 1 and finals[0].endswith("_error"), mine
        err = next(e for e in events if e.run_id == s.run_id and e.event.endswith("_error"))
        assert isinstance(err.args[0], asyncio.CancelledError)
    by_run = {s.attributes["spanhook.run_id"]: s for s in spans}
    for s in starts:
        span = by_run[str(s.run_id)]
        assert span.end_time is not None
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events].count("exception") == 1


def _chain(llm: Any) -> LLMChain:
    return LLMChain(llm=llm, prompt=PromptTemplate.from_template("{q}"))


async def _fresh_root_run() -> tuple[uuid.UUID | None, str]:
    """Run a new chain in the current task; return its parent_run_id and trace id."""
    rec = Recorder()
    await _chain(OfflineLLM()).ainvoke({"q": "after"}, callbacks=[rec])
    start = rec.of("on_chain_start")[0]
    return start.parent_run_id, start.run_id.hex


@pytest.mark.parametrize("model", ["native-async", "sync-in-thread"])
def test_task_cancelled_inside_slow_model_ends_every_span_with_error(
    model: str, memory_exporter: InMemorySpanExporter
) -> None:
    llm = FakeListLLM(["never"], sleep=30) if model == "native-async" else SlowSyncLLM()
    rec, arec, signal = Recorder(), AsyncRecorder(), StartSignal()
    chain = _chain(llm)

    async def main() -> None:
        task = asyncio.create_task(chain.ainvoke({"q": "hi"}, callbacks=[rec, arec, signal]))
        await asyncio.wait_for(signal.fired.wait(), 10)
        await asyncio.sleep(0.01)  # the model is now sleeping
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # nothing leaked into this task, and a new run is a root with its own trace
        assert spanhook.current_run() is None
        assert not trace.get_current_span().get_span_context().is_valid
        parent, _ = await _fresh_root_run()
        assert parent is None

    asyncio.run(main())
    spans = list(memory_exporter.get_finished_spans())
    cancelled = [s for s in spans if s.status.status_code is StatusCode.ERROR]
    assert len(cancelled) == 2
    for r in (rec, arec):
        names = [e.event for e in r.events]
        assert names == [
            "on_chain_start",
            "on_text",
            "on_llm_start",
            "on_llm_error",
            "on_chain_error",
        ]
    assert_each_run_ended_once_with_error(rec, cancelled)
    assert_each_run_ended_once_with_error(arec, cancelled)
    # the fresh run after the cancellation: its own trace, no parent span
    fresh = [
        s for s in spans if s.status.status_code is not StatusCode.ERROR and s.name == "LLMChain"
    ]
    assert len(fresh) == 1 and fresh[0].parent is None
    assert fresh[0].context.trace_id != cancelled[0].context.trace_id  # type: ignore[union-attr]


@needs_timeout
def test_timeout_in_the_same_task_leaves_no_context_behind(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """``asyncio.timeout`` cancels the very task that runs the chain; afterwards the task's
    context is exactly what it was (the application's span current, no run)."""
    tracer = trace.get_tracer("app")
    rec = Recorder()

    async def main() -> None:
        with tracer.start_as_current_span("request") as request_span:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await _chain(FakeListLLM(["x"], sleep=30)).ainvoke({"q": "hi"}, callbacks=[rec])
            assert spanhook.current_run() is None
            assert trace.get_current_span() is request_span
            after = Recorder()
            await _chain(OfflineLLM()).ainvoke({"q": "again"}, callbacks=[after])
            assert after.of("on_chain_start")[0].parent_run_id is None
        assert not trace.get_current_span().get_span_context().is_valid
        parent, _ = await _fresh_root_run()
        assert parent is None

    asyncio.run(main())
    spans = memory_exporter.get_finished_spans()
    failed = [s for s in spans if s.status.status_code is StatusCode.ERROR]
    assert_each_run_ended_once_with_error(rec, failed)
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    request_span = by_name["request"][0]
    chains = by_name["LLMChain"]
    assert len(chains) == 3
    # the cancelled chain and the retry inside the request nest under it; the last one is a root
    nested = [c for c in chains if c.parent is not None]
    assert len(nested) == 2 and all(
        c.parent.span_id == request_span.context.span_id for c in nested
    )  # type: ignore[union-attr]
    root = next(c for c in chains if c.parent is None)
    assert root.context.trace_id != request_span.context.trace_id  # type: ignore[union-attr]


class SlowStreamLLM(LLM):
    """Streams one token at once, then waits a long time for the next."""

    def _call(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> str:
        return "a b"

    async def _astream(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[GenerationChunk]:
        for i, t in enumerate(("one", " two", " three", " four")):
            if i >= 2:
                await asyncio.sleep(30)
            await run_manager.on_llm_new_token(t, chunk=GenerationChunk(text=t))
            yield GenerationChunk(text=t)


@pytest.mark.parametrize("how", ["task.cancel", "timeout"])
def test_cancelled_mid_astream_ends_spans_with_error_and_partial_response(
    how: str, memory_exporter: InMemorySpanExporter
) -> None:
    if how == "timeout" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout is 3.11+")
    rec, arec = Recorder(), AsyncRecorder()
    chain = _chain(SlowStreamLLM())
    got: list[str] = []
    two = asyncio.Event()

    async def consume() -> None:
        async for chunk in chain.astream({"q": "go"}, callbacks=[rec, arec]):
            got.append(chunk)
            if len(got) == 2:
                two.set()

    async def main() -> None:
        if how == "task.cancel":
            task = asyncio.create_task(consume())
            await asyncio.wait_for(two.wait(), 10)
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await consume()
        assert spanhook.current_run() is None
        parent, _ = await _fresh_root_run()
        assert parent is None

    asyncio.run(main())
    assert got == ["one", " two"]
    spans = [
        s for s in memory_exporter.get_finished_spans() if s.status.status_code is StatusCode.ERROR
    ]
    assert len(spans) == 2
    for r in (rec, arec):
        assert [e.event for e in r.events] == [
            "on_chain_start",
            "on_text",
            "on_llm_start",
            "on_llm_new_token",
            "on_llm_new_token",
            "on_llm_error",
            "on_chain_error",
        ]
        response = next(e for e in r.events if e.event == "on_llm_error").kwargs["response"]
        assert isinstance(response, LLMResult) and response.generations[0][0].text == "one two"
    assert_each_run_ended_once_with_error(rec, spans)
    assert all("spanhook.stream.closed_early" not in (s.attributes or {}) for s in spans)


def test_cancel_while_a_sync_handler_is_busy_keeps_its_events_in_order(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """Cancelled while a threaded sync handler is still handling ``on_llm_start``: that
    handler finishes the start event before it gets the error event (a thread cannot be
    interrupted; the error must not overtake it)."""
    log: list[tuple[str, str]] = []
    lock = threading.Lock()
    busy = threading.Event()

    class Busy(BaseCallbackHandler):
        def _log(self, what: str, event: str) -> None:
            with lock:
                log.append((what, event))

        def on_llm_start(self, *a: Any, **k: Any) -> None:
            self._log("begin", "on_llm_start")
            busy.set()
            time.sleep(0.2)
            self._log("done", "on_llm_start")

        def on_llm_error(self, *a: Any, **k: Any) -> None:
            self._log("begin", "on_llm_error")
            self._log("done", "on_llm_error")

        def on_chain_error(self, *a: Any, **k: Any) -> None:
            self._log("begin", "on_chain_error")
            self._log("done", "on_chain_error")

    rec = Recorder()

    async def main() -> None:
        task = asyncio.create_task(
            _chain(FakeListLLM(["x"], sleep=30)).ainvoke({"q": "hi"}, callbacks=[Busy(), rec])
        )
        while not busy.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert log == [
        ("begin", "on_llm_start"),
        ("done", "on_llm_start"),
        ("begin", "on_llm_error"),
        ("done", "on_llm_error"),
        ("begin", "on_chain_error"),
        ("done", "on_chain_error"),
    ]
    assert [e.event for e in rec.events] == [
        "on_chain_start",
        "on_text",
        "on_llm_start",
        "on_llm_error",
        "on_chain_error",
    ]
    assert all(s.end_time is not None for s in memory_exporter.get_finished_spans())
    assert len(memory_exporter.get_finished_spans()) == 2


def test_abandoned_stream_at_loop_shutdown_still_ends_every_span_child_first(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """``break`` out of ``async for`` right before ``asyncio.run`` returns: the loop closes
    the abandoned stream while shutting down; every run still ends exactly once, the
    model's run before its chain's."""
    rec = Recorder()

    async def main() -> None:
        async for _ in _chain(OfflineLLM()).astream({"q": "one two three four"}, callbacks=[rec]):
            break

    asyncio.run(main())
    starts = [e for e in rec.events if e.event.endswith("_start")]
    finals = [e for e in rec.events if e.event.endswith(("_end", "_error"))]
    assert sorted(e.run_id for e in starts) == sorted(e.run_id for e in finals)
    assert finals[0].event == "on_llm_end"  # the child first
    assert finals[1].event in ("on_chain_end", "on_chain_error")
    spans = memory_exporter.get_finished_spans()
    assert len(spans) == 2
    model = next(s for s in spans if s.name != "LLMChain")
    chain = next(s for s in spans if s.name == "LLMChain")
    assert model.end_time <= chain.end_time  # type: ignore[operator]


def test_keyboard_interrupt_inside_a_tool_in_a_sync_run(
    memory_exporter: InMemorySpanExporter,
) -> None:
    def interrupted(expression: str) -> str:
        raise KeyboardInterrupt

    calc = Tool(name="calculator", func=interrupted, description="computes things")
    agent = AgentExecutor(llm=OfflineLLM(), tools=[calc])
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        agent.invoke({"input": "What is 2 + 2?"}, callbacks=[rec])
    assert rec.names() == [
        "on_chain_start",
        "on_llm_start",
        "on_llm_end",
        "on_agent_action",
        "on_tool_start",
        "on_tool_error",
        "on_chain_error",
    ]
    for ev in ("on_tool_error", "on_chain_error"):
        (e,) = rec.of(ev)
        assert isinstance(e.args[0], KeyboardInterrupt)
    assert spanhook.current_run() is None
    assert not trace.get_current_span().get_span_context().is_valid
    spans = {s.name: s for s in memory_exporter.get_finished_spans()}
    assert len(spans) == 3
    assert spans["execute_tool calculator"].status.status_code is StatusCode.ERROR
    assert spans["invoke_agent AgentExecutor"].status.status_code is StatusCode.ERROR
    assert spans["text_completion spanhook-offline-1"].status.status_code is StatusCode.UNSET
    # the next run is a fresh root
    after = Recorder()
    AgentExecutor(
        llm=OfflineLLM(), tools=[Tool(name="calculator", func=lambda e: "4", description="c")]
    ).invoke({"input": "What is 2 + 2?"}, callbacks=[after])
    assert after.of("on_chain_start")[0].parent_run_id is None


def test_many_tasks_cancelled_at_random_points_leave_no_open_runs(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """Forty concurrent requests, half cancelled at different points of their runs: every
    run any handler saw has exactly one end or error, every span ended."""
    recs = [Recorder(f"r{i}") for i in range(40)]

    async def main() -> None:
        llm = OfflineLLM(delay=0.002, streaming=True)
        chain = _chain(llm)
        tasks = [
            asyncio.create_task(chain.ainvoke({"q": "one two three four five six"}, callbacks=[r]))
            for r in recs
        ]
        for i, t in enumerate(tasks):
            if i % 2:
                await asyncio.sleep(0.001)
                t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(isinstance(r, asyncio.CancelledError) for r in results) >= 1
        assert spanhook.current_run() is None

    asyncio.run(main())
    seen: set[str] = set()
    for r in recs:
        starts = [e for e in r.events if e.event.endswith("_start")]
        finals = [e for e in r.events if e.event.endswith(("_end", "_error"))]
        assert sorted(e.run_id for e in starts) == sorted(e.run_id for e in finals)
        seen |= {str(e.run_id) for e in starts}
    exported = {s.attributes["spanhook.run_id"] for s in memory_exporter.get_finished_spans()}  # type: ignore[index]
    assert seen == exported
    assert any(r.of("on_chain_error") for r in recs), "no task was cancelled mid-run"
    assert any(r.of("on_chain_end") for r in recs)
