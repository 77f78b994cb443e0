"""OTel exporters and processors in langchain-core callbacks, with langchain-core's scoping
rules; the request's exporter gets its whole subtree, foreign (httpx) spans included; the
console span tree with verbose."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.globals import set_verbose
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
import spanhook.langchain
from lc_app import ScriptedToolChatModel, build_agent, build_chain
from lc_checks import by_name, collector_edges, parent_of, run_spans, span_edges

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")


def _names(exporter: InMemorySpanExporter) -> list[str]:
    spanhook.force_flush()
    return sorted(s.name for s in exporter.get_finished_spans())


def test_request_exporter_gets_the_whole_agent_subtree_including_httpx(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    agent = build_agent(model, tools)
    mine = InMemorySpanExporter()
    collector = RunCollectorCallbackHandler()
    agent.invoke({"messages": [("human", "widgets")]}, {"callbacks": [mine, collector]})
    agent.invoke({"messages": [("human", "other request")]})
    spanhook.force_flush()
    spans = mine.get_finished_spans()
    assert len(spans) == 16  # 15 runs + the tool's GET
    assert span_edges(spans) == collector_edges(collector)
    (get,) = by_name(spans, "GET")
    assert parent_of(spans, get).name == "execute_tool fetch_data"  # type: ignore[union-attr]
    assert len({s.context.trace_id for s in spans}) == 1
    assert len(traced.get_finished_spans()) == 32  # the application's exporter: both requests


def test_request_span_processor_and_async_request(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    mine = InMemorySpanExporter()
    agent = build_agent(model, tools)
    asyncio.run(
        agent.ainvoke(
            {"messages": [("human", "widgets")]}, {"callbacks": [SimpleSpanProcessor(mine)]}
        )
    )
    assert len(mine.get_finished_spans()) == 16


def test_with_config_exporter_is_inherited_like_langchain_handlers(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    mine = InMemorySpanExporter()
    chain = build_chain(model.model_copy(update={"call_http": True})).with_config(callbacks=[mine])
    chain.invoke({"topic": "cats"})
    assert _names(mine) == sorted(
        [
            "RunnableSequence",
            "enrich",
            "ChatPromptTemplate",
            "chat scripted-fake-1",
            "GET",
            "StrOutputParser",
        ]
    )


def test_constructor_exporters_of_model_and_tool_are_local(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    model_exporter, tool_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    local_model = model.model_copy(update={"callbacks": [model_exporter]})
    fetch = tools[0].model_copy(update={"callbacks": [tool_exporter]})
    agent = build_agent(local_model, [fetch, tools[1]])
    agent.invoke({"messages": [("human", "widgets")]})
    assert _names(model_exporter) == ["chat scripted-fake-1"] * 2
    assert _names(tool_exporter) == ["execute_tool fetch_data"]


def test_exporter_and_langchain_handlers_side_by_side_without_error(
    traced: InMemorySpanExporter,
) -> None:
    mine = InMemorySpanExporter()
    collector = RunCollectorCallbackHandler()
    out = RunnableLambda(lambda x: x * 2).invoke(3, {"callbacks": [collector, mine]})
    assert out == 6
    assert _names(mine) == ["RunnableLambda"]
    assert len(collector.traced_runs) == 1


def test_invalid_callback_entry_is_a_clear_error(traced: InMemorySpanExporter) -> None:
    with pytest.raises(TypeError, match="neither a callback handler"):
        RunnableLambda(lambda x: x).invoke(1, {"callbacks": [object()]})
    assert run_spans(traced.get_finished_spans()) == []


def test_native_spanhook_request_exporter_gets_foreign_child_spans(
    traced: InMemorySpanExporter, server: Any
) -> None:
    import httpx

    from spanhook.tools import tool

    @tool
    def fetch(q: str) -> str:
        """Fetch over HTTP."""
        return httpx.get(f"{server.url}/native").text

    mine = InMemorySpanExporter()
    fetch.run("a", callbacks=[mine])
    fetch.run("b")
    assert _names(mine) == ["GET", "execute_tool fetch"]
    spans = mine.get_finished_spans()
    (get,) = by_name(spans, "GET")
    assert parent_of(spans, get).name == "execute_tool fetch"  # type: ignore[union-attr]


def test_langchain_run_inside_native_run_inherits_its_exporter(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    from spanhook.tools import tool

    chain = build_chain(model)

    @tool
    def ask(q: str) -> str:
        """Ask the LangChain chain."""
        return chain.invoke({"topic": q})

    mine = InMemorySpanExporter()
    ask.run("cats", callbacks=[mine])
    spans = (spanhook.force_flush(), mine.get_finished_spans())[1]
    assert len(spans) == 6
    seq = by_name(spans, "RunnableSequence")[0]
    assert parent_of(spans, seq).name == "execute_tool ask"  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["instrument", "set_verbose"])
def test_verbose_prints_the_span_tree_of_each_request(
    memory_exporter: InMemorySpanExporter,
    model: ScriptedToolChatModel,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    if how == "instrument":
        spanhook.langchain.instrument(verbose=True)
    else:
        spanhook.langchain.instrument()
        set_verbose(True)
    try:
        build_chain(model).invoke({"topic": "cats"})
    finally:
        set_verbose(False)
        spanhook.langchain.uninstrument()
    out = capsys.readouterr().out
    tree = out[out.index("Span tree") :]
    for name in ("RunnableSequence", "enrich", "ChatPromptTemplate", "chat scripted-fake-1"):
        assert name in tree
    assert tree.count("Span tree") == 1
