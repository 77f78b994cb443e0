"""Carrying the current run into threads, with real thread pools.

- ``batch`` / ``abatch`` run in worker threads (or tasks) that carry the caller's scope and
  parent: a request handler given to ``chain.batch`` sees every run, with parent links to
  the batch's runs;
- ``spanhook.carry``, ``ContextThreadPoolExecutor`` and ``submit_with_context`` carry the
  current run into the user's own threads and executors;
- a span the application's own tracer creates inside a tool that runs in a thread pool nests
  under that tool's span;
- without a helper, a plain ``ThreadPoolExecutor`` does not carry the run (Python does not
  copy contextvars into pool threads): the work done there is a separate root.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from helpers import Recorder
from spanhook import ContextThreadPoolExecutor, carry, submit_with_context
from spanhook.chains import Chain, LLMChain
from spanhook.llms import FakeListLLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.tools import Tool


class ThreadNoter(Recorder):
    """A recorder that also notes the thread of every start event."""

    def __init__(self, label: str = "rec") -> None:
        super().__init__(label)
        self.threads: set[int] = set()

    def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.threads.add(threading.get_ident())
        super().on_llm_start(*args, **kwargs)  # type: ignore[misc]


def _by_run_id(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {str((s.attributes or {})["spanhook.run_id"]): s for s in spans}


def assert_handler_tree_matches_spans(rec: Recorder, spans: Any) -> None:
    """Each run the handler saw has a span, and the span's parent is the span of the run the
    handler was told is the parent."""
    by_run = _by_run_id(spans)
    by_span = {s.context.span_id: s for s in spans}  # type: ignore[union-attr]
    for e in rec.starts():
        span = by_run[str(e.run_id)]
        if e.parent_run_id is None:
            assert span.parent is None or (
                span.parent.span_id not in by_span
                or "spanhook.run_id" not in (by_span[span.parent.span_id].attributes or {})
            )
        else:
            assert span.parent is not None
            assert str(by_span[span.parent.span_id].attributes["spanhook.run_id"]) == str(
                e.parent_run_id
            )  # type: ignore[index]


def _llm_chain(sleep: float = 0.05) -> LLMChain:
    return LLMChain(
        llm=FakeListLLM(["ok"], sleep=sleep), prompt=PromptTemplate.from_template("{q}")
    )


@pytest.mark.parametrize("mode", ["batch", "abatch"])
def test_batch_request_handler_sees_every_run_with_parent_links(
    mode: str, memory_exporter: InMemorySpanExporter
) -> None:
    rec = ThreadNoter()
    chain = _llm_chain()
    inputs = [{"q": f"question {i}"} for i in range(6)]
    if mode == "batch":
        out = chain.batch(inputs, callbacks=[rec], max_concurrency=3)
    else:
        out = asyncio.run(chain.abatch(inputs, callbacks=[rec], max_concurrency=3))
    assert [o["text"] for o in out] == ["ok"] * 6

    chain_starts = rec.of("on_chain_start")
    llm_starts = rec.of("on_llm_start")
    assert len(chain_starts) == 6 and len(llm_starts) == 6
    chain_ids = {e.run_id for e in chain_starts}
    assert all(e.parent_run_id is None for e in chain_starts)
    assert {e.parent_run_id for e in llm_starts} == chain_ids  # one model run under each chain run
    assert len(rec.of("on_llm_end")) == 6 and len(rec.of("on_chain_end")) == 6
    if mode == "batch":
        assert len(rec.threads) > 1, "batch ran in one thread only"
        assert threading.get_ident() not in rec.threads
    assert_handler_tree_matches_spans(rec, memory_exporter.get_finished_spans())


class Outer(Chain):
    """Calls an inner chain's batch from inside its own run."""

    input_keys: ClassVar[list[str]] = ["n"]
    output_keys: ClassVar[list[str]] = ["texts"]
    inner: Any = None

    def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        outs = self.inner.batch([{"q": str(i)} for i in range(int(inputs["n"]))])
        return {"texts": [o["text"] for o in outs]}

    async def _acall(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        outs = await self.inner.abatch([{"q": str(i)} for i in range(int(inputs["n"]))])
        return {"texts": [o["text"] for o in outs]}


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_batch_inside_a_run_nests_under_it_and_inherits_its_handlers(
    mode: str, memory_exporter: InMemorySpanExporter
) -> None:
    rec = Recorder()
    outer = Outer(inner=_llm_chain())
    if mode == "invoke":
        outer.invoke({"n": 4}, callbacks=[rec])
    else:
        asyncio.run(outer.ainvoke({"n": 4}, callbacks=[rec]))
    (outer_start,) = [e for e in rec.of("on_chain_start") if e.name == "Outer"]
    inner_chains = [e for e in rec.of("on_chain_start") if e.name == "LLMChain"]
    assert len(inner_chains) == 4
    assert all(e.parent_run_id == outer_start.run_id for e in inner_chains)
    assert {e.parent_run_id for e in rec.of("on_llm_start")} == {e.run_id for e in inner_chains}
    spans = memory_exporter.get_finished_spans()
    assert len({s.context.trace_id for s in spans}) == 1  # type: ignore[union-attr]
    assert_handler_tree_matches_spans(rec, spans)


def test_llm_batch_carries_the_callers_run(memory_exporter: InMemorySpanExporter) -> None:
    rec = ThreadNoter()
    llm = FakeListLLM(["a"], sleep=0.05)

    class UsesLLMBatch(Chain):
        input_keys: ClassVar[list[str]] = ["x"]
        output_keys: ClassVar[list[str]] = ["y"]

        def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
            return {"y": llm.batch(["p1", "p2", "p3"])}

    UsesLLMBatch().invoke({"x": 1}, callbacks=[rec])
    (chain,) = rec.of("on_chain_start")
    assert [e.parent_run_id for e in rec.of("on_llm_start")] == [chain.run_id] * 3
    assert len(rec.threads) > 1
    assert_handler_tree_matches_spans(rec, memory_exporter.get_finished_spans())


# -- the user's own threads --------------------------------------------------------------


class FansOut(Chain):
    """Runs a model call in the user's own thread / executor, using one of the helpers."""

    input_keys: ClassVar[list[str]] = ["how"]
    output_keys: ClassVar[list[str]] = ["out"]

    def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        llm = OfflineLLM()
        how = inputs["how"]

        def work(x: int = 0) -> str:
            return llm.invoke(f"{x} + 1 = ")

        if how == "carry":
            box: list[str] = []
            t = threading.Thread(target=carry(lambda: box.append(work(1))))
            t.start()
            t.join()
            return {"out": box}
        if how == "ContextThreadPoolExecutor.submit":
            with ContextThreadPoolExecutor(max_workers=2) as ex:
                return {"out": [f.result() for f in [ex.submit(work, i) for i in range(3)]]}
        if how == "ContextThreadPoolExecutor.map":
            with ContextThreadPoolExecutor(max_workers=2) as ex:
                return {"out": list(ex.map(work, range(3)))}
        if how == "submit_with_context":
            with ThreadPoolExecutor(max_workers=2) as plain:
                return {"out": [submit_with_context(plain, work, i).result() for i in range(3)]}
        if how == "plain ThreadPoolExecutor":
            with ThreadPoolExecutor(max_workers=2) as plain:
                return {"out": [plain.submit(work, i).result() for i in range(3)]}
        raise AssertionError(how)


HELPERS = [
    "carry",
    "ContextThreadPoolExecutor.submit",
    "ContextThreadPoolExecutor.map",
    "submit_with_context",
]


@pytest.mark.parametrize("how", HELPERS)
def test_helpers_carry_the_current_run_into_user_threads(
    how: str, memory_exporter: InMemorySpanExporter
) -> None:
    rec = ThreadNoter()
    out = FansOut().invoke({"how": how}, callbacks=[rec])["out"]
    n = len(out)
    assert n >= 1
    (chain,) = rec.of("on_chain_start")
    llm_starts = rec.of("on_llm_start")
    assert len(llm_starts) == n  # the chain's request handler reached the threads
    assert all(e.parent_run_id == chain.run_id for e in llm_starts)
    assert threading.get_ident() not in rec.threads
    spans = memory_exporter.get_finished_spans()
    assert len({s.context.trace_id for s in spans}) == 1  # type: ignore[union-attr]
    assert_handler_tree_matches_spans(rec, spans)
    assert spanhook.current_run() is None


def test_plain_thread_pool_does_not_carry_the_run(memory_exporter: InMemorySpanExporter) -> None:
    """Documented behaviour: a plain ``ThreadPoolExecutor`` starts its tasks in an empty
    context, so the model runs there are roots, in traces of their own, and the chain's
    request handler does not see them. Use one of the helpers to carry the run."""
    rec = Recorder()
    out = FansOut().invoke({"how": "plain ThreadPoolExecutor"}, callbacks=[rec])["out"]
    assert out == ["1", "2", "3"]
    assert rec.names() == ["on_chain_start", "on_chain_end"]  # no model run reached it
    spans = memory_exporter.get_finished_spans()
    chain = next(s for s in spans if s.name == "FansOut")
    models = [s for s in spans if s is not chain]
    assert len(models) == 3
    assert all(s.parent is None for s in models)
    assert all(s.context.trace_id != chain.context.trace_id for s in models)  # type: ignore[union-attr]


# -- the application's own spans inside a tool in a thread pool ------------------------------


def _db_tool(nested_pool: str | None = None) -> Tool:
    tracer = trace.get_tracer("app.db")

    def query(q: str) -> str:
        def do() -> str:
            with tracer.start_as_current_span("db.query") as span:
                span.set_attribute("db.statement", q)
                return f"rows for {q}"

        if nested_pool == "helper":
            with ContextThreadPoolExecutor(max_workers=1) as ex:
                return ex.submit(do).result()
        if nested_pool == "plain":
            with ThreadPoolExecutor(max_workers=1) as plain:
                return plain.submit(do).result()
        return do()

    return Tool(name="db", func=query, description="queries the database")


class ToolChain(Chain):
    input_keys: ClassVar[list[str]] = ["q"]
    output_keys: ClassVar[list[str]] = ["rows"]
    tool: Any = None

    def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        return {"rows": self.tool.run(inputs["q"])}

    async def _acall(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        return {"rows": await self.tool.arun(inputs["q"])}


def _assert_db_spans_under_tools(spans: Any, expected: int) -> None:
    db = [s for s in spans if s.name == "db.query"]
    tools = {s.context.span_id: s for s in spans if s.name == "execute_tool db"}
    assert len(db) == expected and len(tools) == expected
    assert all(s.parent is not None and s.parent.span_id in tools for s in db)
    # one db span under each tool span
    assert len({s.parent.span_id for s in db}) == expected
    for s in db:
        assert s.context.trace_id == tools[s.parent.span_id].context.trace_id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "how", ["chain.batch threads", "tool.arun worker thread", "helper pool inside the tool"]
)
def test_app_span_inside_a_tool_in_a_thread_pool_nests_under_the_tool(
    how: str, memory_exporter: InMemorySpanExporter
) -> None:
    if how == "chain.batch threads":
        ToolChain(tool=_db_tool()).batch([{"q": f"q{i}"} for i in range(4)])
        _assert_db_spans_under_tools(memory_exporter.get_finished_spans(), 4)
    elif how == "tool.arun worker thread":  # a sync tool function runs in the loop's executor

        async def main() -> None:
            await asyncio.gather(
                *(ToolChain(tool=_db_tool()).ainvoke({"q": f"q{i}"}) for i in range(4))
            )

        asyncio.run(main())
        _assert_db_spans_under_tools(memory_exporter.get_finished_spans(), 4)
    else:
        ToolChain(tool=_db_tool("helper")).invoke({"q": "select 1"})
        _assert_db_spans_under_tools(memory_exporter.get_finished_spans(), 1)


def test_app_span_in_a_plain_pool_inside_a_tool_is_a_separate_root(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """Documented behaviour: without a helper the application's span does not nest."""
    ToolChain(tool=_db_tool("plain")).invoke({"q": "select 1"})
    spans = memory_exporter.get_finished_spans()
    (db,) = [s for s in spans if s.name == "db.query"]
    (tool_span,) = [s for s in spans if s.name == "execute_tool db"]
    assert db.parent is None
    assert db.context.trace_id != tool_span.context.trace_id  # type: ignore[union-attr]


def test_carry_binds_the_context_at_wrap_time_not_call_time(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """``carry(fn)`` captures the run current when it is called; the wrapped function later
    runs under that run even after the run has ended on the caller's side (a background
    thread outliving its request is still attributed to it)."""
    captured: dict[str, Any] = {}
    rec = Recorder()

    class Captures(Chain):
        input_keys: ClassVar[list[str]] = ["x"]
        output_keys: ClassVar[list[str]] = ["y"]

        def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
            captured["fn"] = carry(lambda: spanhook.current_run())
            captured["run_id"] = spanhook.current_run().run_id  # type: ignore[union-attr]
            return {"y": 1}

    Captures().invoke({"x": 1}, callbacks=[rec])
    assert spanhook.current_run() is None
    box: list[Any] = []
    t = threading.Thread(target=lambda: box.append(captured["fn"]()))
    t.start()
    t.join()
    assert box[0] is not None and box[0].run_id == captured["run_id"]
    assert isinstance(captured["run_id"], uuid.UUID)
