"""Concurrency under load: 1,000 concurrent asyncio requests, and 8 threads x 1,000 runs.

Each request has its own request handler. Every handler sees exactly its own request's runs
(run ids disjoint, counts exact), every start has exactly one end or error, and the parent
links handlers get form the same trees as the exported spans (span attribute
``spanhook.run_id`` -> span; the parent span's run id is the handler's ``parent_run_id``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from typing import Any, ClassVar

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from helpers import AsyncRecorder, Event, Recorder
from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.chains import Chain
from spanhook.llms import OfflineLLM
from spanhook.tools import Tool

ASYNC_REQUESTS = 1000
THREADS = 8
RUNS_PER_THREAD = 1000


class AsyncRec(AsyncRecorder):
    """An async handler with the same queries as :class:`Recorder`."""

    def of(self, event: str) -> list[Event]:
        return [e for e in self.events if e.event == event]

    def starts(self) -> list[Event]:
        return [e for e in self.events if e.event.endswith("_start")]

    def run_ids(self) -> set[uuid.UUID]:
        return {e.run_id for e in self.events if "run_id" in e.kwargs}


class Answer(Chain):
    """chain -> llm + tool: asks the model, then checks the answer with the calculator."""

    input_keys: ClassVar[list[str]] = ["n"]
    output_keys: ClassVar[list[str]] = ["answer", "checked"]

    def __init__(self, llm: OfflineLLM, tool: Tool) -> None:
        super().__init__()
        self.llm = llm
        self.tool = tool

    def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        n = inputs["n"]
        answer = self.llm.invoke(f"{n} * 3 = ")
        return {"answer": answer, "checked": self.tool.run(f"{answer} / 3")}

    async def _acall(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        n = inputs["n"]
        answer = await self.llm.ainvoke(f"{n} * 3 = ")
        return {"answer": answer, "checked": await self.tool.arun(f"{answer} / 3")}


def check_requests(recs: list[Any], runs_per_request: int, spans: tuple[ReadableSpan, ...]) -> None:
    # every handler sees exactly its own request's runs; run ids disjoint across handlers
    all_ids: set[uuid.UUID] = set()
    for rec in recs:
        starts = rec.starts()
        assert len(starts) == runs_per_request, (rec.label, rec.names())
        ids = {e.run_id for e in starts}
        assert len(ids) == runs_per_request
        assert not (ids & all_ids), f"{rec.label} saw another request's run"
        all_ids |= ids
        # every start has exactly one end or error, and every event belongs to a started run
        finals = Counter(e.run_id for e in rec.events if e.event.endswith(("_end", "_error")))
        assert finals == Counter(ids), rec.label
        assert rec.run_ids() == ids
        # one root per request, everything else hangs under runs of the same request
        roots = [e for e in starts if e.parent_run_id is None]
        assert len(roots) == 1
        assert all(e.parent_run_id in ids for e in starts if e.parent_run_id is not None)

    # the handlers' trees are the exported spans' trees
    assert len(spans) == len(all_ids)
    by_run = {str((s.attributes or {})["spanhook.run_id"]): s for s in spans}
    assert set(by_run) == {str(i) for i in all_ids}
    by_span = {s.context.span_id: s for s in spans}  # type: ignore[union-attr]
    for rec in recs:
        trace_ids = set()
        for e in rec.starts():
            span = by_run[str(e.run_id)]
            trace_ids.add(span.context.trace_id)  # type: ignore[union-attr]
            if e.parent_run_id is None:
                assert span.parent is None
            else:
                assert span.parent is not None
                parent = by_span[span.parent.span_id]
                assert (parent.attributes or {})["spanhook.run_id"] == str(e.parent_run_id)
        assert len(trace_ids) == 1, "one request, one trace"


def test_1000_concurrent_asyncio_requests_each_with_its_own_handler(
    memory_exporter: InMemorySpanExporter,
) -> None:
    app = Answer(OfflineLLM(), calculator_tool())
    recs = [Recorder(f"req{i}") for i in range(ASYNC_REQUESTS)]

    async def one(i: int) -> dict[str, Any]:
        await asyncio.sleep(0)  # interleave the requests
        out = await app.ainvoke({"n": i}, callbacks=[recs[i]])
        assert spanhook.current_run() is None
        return out

    async def main() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(one(i) for i in range(ASYNC_REQUESTS))))

    outs = asyncio.run(main())
    assert [o["answer"] for o in outs] == [str(3 * i) for i in range(ASYNC_REQUESTS)]
    assert [o["checked"] for o in outs] == [str(i) for i in range(ASYNC_REQUESTS)]
    check_requests(recs, 3, memory_exporter.get_finished_spans())
    # each handler got its own request's answer, not another's
    for i, rec in enumerate(recs):
        assert rec.of("on_tool_end")[0].args[0] == str(i)


def test_1000_concurrent_agent_requests(memory_exporter: InMemorySpanExporter) -> None:
    """The same with the ReAct agent (agent -> llm, tool, llm); every other request has an
    async handler instead of a sync one."""
    agent = AgentExecutor(llm=OfflineLLM(), tools=[calculator_tool()])
    recs: list[Any] = [
        Recorder(f"agent{i}") if i % 2 else AsyncRec(f"agent{i}") for i in range(ASYNC_REQUESTS)
    ]

    async def main() -> list[str]:
        return list(
            await asyncio.gather(
                *(
                    agent.arun(f"What is {i} + 1000?", callbacks=[recs[i]])
                    for i in range(ASYNC_REQUESTS)
                )
            )
        )

    outs = asyncio.run(main())
    assert outs == [str(i + 1000) for i in range(ASYNC_REQUESTS)]
    check_requests(recs, 4, memory_exporter.get_finished_spans())
    for i, rec in enumerate(recs):
        (finish,) = rec.of("on_agent_finish")
        assert finish.args[0].return_values["output"] == str(i + 1000)


def test_8_threads_x_1000_runs_each_with_its_own_handler(
    memory_exporter: InMemorySpanExporter,
) -> None:
    app = Answer(OfflineLLM(), calculator_tool())
    recs = [[Recorder(f"t{t}r{i}") for i in range(RUNS_PER_THREAD)] for t in range(THREADS)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(RUNS_PER_THREAD):
                n = t * RUNS_PER_THREAD + i
                out = app.invoke({"n": n}, callbacks=[recs[t][i]])
                assert out["answer"] == str(3 * n) and out["checked"] == str(n)
                assert spanhook.current_run() is None
        except BaseException as e:  # reported below, with the thread's failure
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    flat = [r for row in recs for r in row]
    check_requests(flat, 3, memory_exporter.get_finished_spans())
    for t in range(THREADS):
        for i, rec in enumerate(recs[t]):
            assert rec.of("on_tool_end")[0].args[0] == str(t * RUNS_PER_THREAD + i)
