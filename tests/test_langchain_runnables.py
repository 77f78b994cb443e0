"""Every kind of langchain-core run gets exactly one span, in langchain-core's own tree:
parallels, branches, fallbacks, retries, LLMs, retrievers, sync and async, batch."""

from __future__ import annotations

import asyncio
import operator
import time
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import LLM
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableBranch, RunnableLambda, RunnableParallel
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langgraph._internal import _runnable as lg_runnable
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook.langchain
from lc_app import build_approval_graph
from lc_checks import by_name, collector_edges, run_spans, span_edges

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")


LLM_SEEN: list[str] = []


class EchoLLM(LLM):
    """An LLM whose ``_call`` records the span current inside it (in ``LLM_SEEN``)."""

    @property
    def _llm_type(self) -> str:
        return "echo-llm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": "echo-1"}

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        LLM_SEEN.append(getattr(trace.get_current_span(), "name", "<none>"))
        return f"echo: {prompt}"


class Docs(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content=f"doc about {query}")]


def _flaky() -> RunnableLambda[Any, Any]:
    attempts = {"n": 0}

    def once_failing(x: Any) -> Any:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ValueError("first attempt fails")
        return x

    return RunnableLambda(once_failing)


def _app() -> Any:
    def broken(x: Any) -> Any:
        raise RuntimeError("primary down")

    fallback = RunnableLambda(broken).with_fallbacks([RunnableLambda(lambda x: f"fb {x}")])
    branch = RunnableBranch(
        (lambda x: x.startswith("q"), RunnableLambda(lambda x: x.upper())),
        RunnableLambda(lambda x: x),
    )
    return RunnableParallel(
        llm=EchoLLM(),
        docs=Docs(),
        branch=branch,
        fallback=fallback,
        retried=_flaky().with_retry(stop_after_attempt=2, wait_exponential_jitter=False),
    )


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "batch"])
def test_every_run_kind_one_span_in_langchains_tree(
    traced: InMemorySpanExporter, mode: str
) -> None:
    LLM_SEEN.clear()
    collector = RunCollectorCallbackHandler()
    app = _app()
    config: Any = {"callbacks": [collector]}
    if mode == "invoke":
        out = app.invoke("question", config)
    elif mode == "ainvoke":
        out = asyncio.run(app.ainvoke("question", config))
    else:
        out = app.batch(["question", "q2"], config)[0]
    assert out["llm"] == "echo: question"
    assert out["fallback"] == "fb question"
    spans = traced.get_finished_spans()
    edges = collector_edges(collector)
    assert len(run_spans(spans)) == len(edges)
    assert span_edges(spans) == edges
    (llm,) = by_name(spans, "text_completion echo-1")[:1]
    assert llm.attributes["gen_ai.operation.name"] == "text_completion"
    assert llm.attributes["gen_ai.request.model"] == "echo-1"
    assert by_name(spans, "retrieval Docs")[0].attributes["spanhook.retriever.documents"] == 1
    assert set(LLM_SEEN) == {"text_completion echo-1"}
    failed = [s for s in spans if s.status.status_code == trace.StatusCode.ERROR]
    assert {s.name for s in failed} >= {"broken"}
    assert len({s.context.trace_id for s in run_spans(spans) if s.parent is None}) == len(
        [s for s in run_spans(spans) if s.parent is None]
    )


# -- LangGraph map-reduce (module level: LangGraph reads the annotations) -------------


class State(TypedDict):
    items: list[str]
    out: Annotated[list[str], operator.add]


class Item(TypedDict):
    item: str


def fan_out(state: State) -> list[Send]:
    return [Send("work", {"item": i}) for i in state["items"]]


def work(task: Item) -> dict[str, list[str]]:
    with trace.get_tracer("app").start_as_current_span(f"inner {task['item']}"):
        time.sleep(0.01)
    return {"out": [task["item"].upper()]}


async def awork(task: Item) -> dict[str, list[str]]:
    with trace.get_tracer("app").start_as_current_span(f"inner {task['item']}"):
        await asyncio.sleep(0.01)
    return {"out": [task["item"].upper()]}


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_langgraph_send_fan_out_each_task_under_its_own_node_span(
    traced: InMemorySpanExporter, mode: str
) -> None:
    """Map-reduce with ``Send``: the tasks of one step run at once (threads for ``invoke``,
    tasks for ``ainvoke``); a span the application opens in each task nests under that
    task's own node span, in langchain-core's tree, one trace."""
    _check_fan_out(traced, mode)


def _check_fan_out(traced: InMemorySpanExporter, mode: str) -> None:
    graph = StateGraph(State)
    graph.add_node("work", work if mode == "invoke" else awork)
    graph.add_conditional_edges(START, fan_out, ["work"])
    graph.add_edge("work", END)
    app = graph.compile()
    collector = RunCollectorCallbackHandler()
    request: Any = {"items": ["a", "b", "c"], "out": []}
    config: Any = {"callbacks": [collector]}
    out = (
        app.invoke(request, config)
        if mode == "invoke"
        else asyncio.run(app.ainvoke(request, config))
    )
    assert sorted(out["out"]) == ["A", "B", "C"]
    spans = traced.get_finished_spans()
    assert span_edges(spans) == collector_edges(collector)
    assert len({s.context.trace_id for s in spans}) == 1
    names = {s.context.span_id: s.name for s in spans}
    inner_parent = {
        s.name: s.parent.span_id for s in spans if s.name.startswith("inner") and s.parent
    }
    assert {names[p] for p in inner_parent.values()} == {"work"}
    assert len(set(inner_parent.values())) == 3  # each task its own node span


def test_async_nodes_keep_their_run_where_asyncio_tasks_take_no_context(
    traced: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before Python 3.11, ``asyncio.create_task`` takes no ``context`` and LangGraph awaits
    an async node's body in the caller's context: without help, spans the node makes would
    start traces of their own, and LangGraph's ``get_config()`` (so ``interrupt()``) fails.
    LangGraph's own flag selects that code path here, on any Python; instrumented, the node
    runs in the context LangGraph prepared for it, and uninstrumenting restores both."""
    spanhook.langchain.uninstrument()  # patched while LangGraph's module is its own
    monkeypatch.setattr(lg_runnable, "ASYNCIO_ACCEPTS_CONTEXT", False)
    spanhook.langchain.instrument()
    try:
        assert lg_runnable.asyncio is not asyncio and lg_runnable.ASYNCIO_ACCEPTS_CONTEXT
        _check_fan_out(traced, "ainvoke")
        graph = build_approval_graph(name="approval")
        paused = asyncio.run(
            graph.ainvoke({"item": "x", "answer": ""}, {"configurable": {"thread_id": "t"}})
        )
        assert [i.value for i in paused["__interrupt__"]] == [{"question": "refund x?"}]
    finally:
        spanhook.langchain.uninstrument()  # before monkeypatch restores the flag
    assert lg_runnable.asyncio is asyncio and lg_runnable.ASYNCIO_ACCEPTS_CONTEXT is False
