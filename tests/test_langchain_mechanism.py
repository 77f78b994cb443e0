"""spanhook.langchain: set-up, one span per langchain-core run with langchain-core's own
tree, and the run's span current while its body executes (never leaking to the caller)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import pytest
from langchain_core.callbacks import manager as lc_manager
from langchain_core.language_models import chat_models, llms
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables import base as lc_base
from langchain_core.runnables import config as lc_config
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langgraph._internal import _runnable as lg_runnable
from langgraph.pregel import main as lg_main
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook.langchain
from lc_app import SEEN, ScriptedToolChatModel, build_agent, build_chain
from lc_checks import (
    by_name,
    collector_edges,
    parent_of,
    run_spans,
    seen_names,
    span_edges,
)

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")

HOOKED = [
    (lc_manager, "_configure"),
    (lc_manager.AsyncCallbackManager, "on_llm_start"),
    (lc_config, "_set_config_context"),
    (lg_runnable, "_set_config_context"),
    (chat_models.BaseChatModel, "_generate_with_cache"),
    (chat_models.BaseChatModel, "_agenerate_with_cache"),
    (chat_models.BaseChatModel, "stream"),
    (chat_models.BaseChatModel, "astream"),
    (llms.BaseLLM, "_generate_helper"),
    (llms.BaseLLM, "_agenerate_helper"),
    (llms.BaseLLM, "stream"),
    (llms.BaseLLM, "astream"),
    (lc_base.Runnable, "_transform_stream_with_config"),
    (lg_main, "get_sync_graph_callback_manager_for_config"),
    (lg_main, "get_async_graph_callback_manager_for_config"),
]
_MISSING = object()


def _snapshot() -> list[object]:
    return [vars(owner).get(name, _MISSING) for owner, name in HOOKED]


def test_instrument_is_idempotent_and_uninstrument_restores_exactly(
    memory_exporter: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    before = _snapshot()
    chain = build_chain(model)
    untraced = chain.invoke({"topic": "cats"})
    spanhook.langchain.instrument()
    spanhook.langchain.instrument()
    try:
        assert spanhook.langchain.is_instrumented()
        hooked = _snapshot()
        assert all(a is not b for a, b in zip(before, hooked, strict=True))
        assert chain.invoke({"topic": "cats"}) == untraced
        assert len(run_spans(memory_exporter.get_finished_spans())) == 5
    finally:
        spanhook.langchain.uninstrument()
    after = _snapshot()
    assert all(a is b for a, b in zip(before, after, strict=True))
    assert not spanhook.langchain.is_instrumented()
    memory_exporter.clear()
    collector = RunCollectorCallbackHandler()
    assert chain.invoke({"topic": "cats"}, {"callbacks": [collector]}) == untraced
    assert memory_exporter.get_finished_spans() == ()
    handlers = collector.traced_runs[0]  # langchain-core's own tracing is untouched
    assert len(handlers.child_runs) == 4


def test_lcel_chain_one_span_per_run_with_langchains_tree(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    collector = RunCollectorCallbackHandler()
    build_chain(model).invoke({"topic": "cats"}, {"callbacks": [collector]})
    spans = traced.get_finished_spans()
    assert len(run_spans(spans)) == 5
    assert span_edges(spans) == collector_edges(collector)
    assert len({s.context.trace_id for s in spans}) == 1
    assert sorted(s.name for s in spans) == sorted(
        [
            "RunnableSequence",
            "enrich",
            "ChatPromptTemplate",
            "chat scripted-fake-1",
            "StrOutputParser",
        ]
    )
    chat = by_name(spans, "chat scripted-fake-1")[0]
    assert chat.kind == trace.SpanKind.CLIENT
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == "scripted-fake-1"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 7
    assert seen_names("lambda") == ["enrich"]
    assert seen_names("chat_model") == ["chat scripted-fake-1"]


def _check_agent_request(spans: Any, collector: RunCollectorCallbackHandler) -> None:
    assert len(run_spans(spans)) == len(collector_edges(collector)) == 15
    assert span_edges(spans) == collector_edges(collector)
    assert len({s.context.trace_id for s in spans}) == 1
    (root,) = [s for s in spans if s.parent is None]
    assert root.name == "invoke_agent inventory_agent"
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    (get,) = by_name(spans, "GET")
    tool_span = parent_of(spans, get)
    assert tool_span is not None and tool_span.name == "execute_tool fetch_data"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_1"


def test_agent_invoke_tree_and_http_call_in_tool_nested(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    collector = RunCollectorCallbackHandler()
    agent = build_agent(model, tools)
    out = agent.invoke({"messages": [("human", "widgets")]}, {"callbacks": [collector]})
    assert "stock" in out["messages"][-1].content
    _check_agent_request(traced.get_finished_spans(), collector)
    assert seen_names("tool") == ["execute_tool fetch_data"]  # in ToolNode's worker thread
    assert seen_names("chat_model") == ["chat scripted-fake-1"] * 2


def test_agent_ainvoke_tree_and_http_call_in_tool_nested(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    collector = RunCollectorCallbackHandler()
    agent = build_agent(model, tools)
    asyncio.run(agent.ainvoke({"messages": [("human", "widgets")]}, {"callbacks": [collector]}))
    _check_agent_request(traced.get_finished_spans(), collector)
    assert seen_names("tool") == ["execute_tool fetch_data"]


def test_agent_astream_events_yields_what_it_yields_untraced_with_the_same_tree(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    """``astream_events`` (v2), the API streaming front-ends read: the same events as
    untraced, one span per run in langchain-core's tree, each body under its run's span."""
    agent = build_agent(model, tools)

    async def events(config: Any) -> list[tuple[str, str]]:
        request = {"messages": [("human", "widgets")]}
        stream = agent.astream_events(request, config, version="v2")
        return [(e["event"], e["name"]) async for e in stream]

    spanhook.langchain.uninstrument()
    untraced = asyncio.run(events({}))
    spanhook.langchain.instrument()
    SEEN.clear()
    traced.clear()  # the untraced request's own httpx span
    collector = RunCollectorCallbackHandler()
    assert asyncio.run(events({"callbacks": [collector]})) == untraced
    _check_agent_request(traced.get_finished_spans(), collector)
    assert seen_names("tool") == ["execute_tool fetch_data"]
    assert set(seen_names("chat_model_stream")) == {"chat scripted-fake-1"}


def test_batch_threads_each_request_its_own_trace(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    agent = build_agent(model, tools)
    agent.batch([{"messages": [("human", f"item {i}")]} for i in range(4)], {"max_concurrency": 2})
    tools[0].batch([{"item": f"x{i}"} for i in range(4)])
    spans = traced.get_finished_spans()
    gets = by_name(spans, "GET")
    assert len(gets) == 8
    for get in gets:
        tool_span = parent_of(spans, get)
        assert tool_span is not None and tool_span.name == "execute_tool fetch_data"
        assert tool_span.context.trace_id == get.context.trace_id
    assert len({s.context.trace_id for s in spans}) == 8
    assert seen_names("tool") == ["execute_tool fetch_data"] * 8


def test_abatch_each_request_its_own_trace(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    agent = build_agent(model, tools)
    asyncio.run(
        agent.abatch(
            [{"messages": [("human", f"item {i}")]} for i in range(4)], {"max_concurrency": 2}
        )
    )
    spans = traced.get_finished_spans()
    gets = by_name(spans, "GET")
    assert len(gets) == 4
    for get in gets:
        tool_span = parent_of(spans, get)
        assert tool_span is not None and tool_span.name == "execute_tool fetch_data"
    assert len({s.context.trace_id for s in spans}) == 4
    assert len([s for s in spans if s.parent is None]) == 4


@pytest.mark.parametrize("use_async", [False, True])
def test_http_call_inside_chat_model_body_nests_under_model_span(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, use_async: bool
) -> None:
    chain = build_chain(model.model_copy(update={"call_http": True}))
    if use_async:
        asyncio.run(chain.ainvoke({"topic": "cats"}))
    else:
        chain.invoke({"topic": "cats"})
    spans = traced.get_finished_spans()
    (get,) = by_name(spans, "GET")
    parent = parent_of(spans, get)
    assert parent is not None and parent.name == "chat scripted-fake-1"
    assert len({s.context.trace_id for s in spans}) == 1


def test_stream_bodies_run_under_their_spans(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    chain = build_chain(model)
    chunks = list(chain.stream({"topic": "cats"}))
    assert "".join(chunks).startswith("answer to")
    assert seen_names("lambda") == ["enrich"]
    stream_seen = seen_names("chat_model_stream")
    assert len(stream_seen) > 3 and set(stream_seen) == {"chat scripted-fake-1"}
    SEEN.clear()

    async def consume() -> list[str]:
        return [c async for c in chain.astream({"topic": "dogs"})]

    assert "".join(asyncio.run(consume())).startswith("answer to")
    stream_seen = seen_names("chat_model_stream")
    assert len(stream_seen) > 3 and set(stream_seen) == {"chat scripted-fake-1"}
    spans = traced.get_finished_spans()
    assert len(run_spans(spans)) == 10
    assert len({s.context.trace_id for s in spans}) == 2


def test_open_closed_and_abandoned_sync_streams_leave_the_caller_span_alone(
    traced: InMemorySpanExporter,
    model: ScriptedToolChatModel,
    tools: list[Any],
    detach_errors: Callable[[], list[str]],
) -> None:
    tracer = trace.get_tracer("app")
    chain = build_chain(model)
    agent = build_agent(model, tools)
    with tracer.start_as_current_span("caller") as caller:
        stream = chain.stream({"topic": "open"}, {"run_name": "req-open"})
        next(stream)
        assert trace.get_current_span() is caller  # while the stream is open
        stream.close()
        assert trace.get_current_span() is caller
        abandoned = agent.stream({"messages": [("human", "abandon")]}, {"run_name": "req-ab"})
        next(abandoned)
        assert trace.get_current_span() is caller
        del abandoned
        gc.collect()
        assert trace.get_current_span() is caller
        chain.invoke({"topic": "after"}, {"run_name": "req-after"})
        assert trace.get_current_span() is caller
    spans = traced.get_finished_spans()
    roots = {s.name: s for s in spans if parent_of(spans, s) is caller_span(spans)}
    assert set(roots) == {"req-open", "invoke_agent req-ab", "req-after"}
    after = roots["req-after"]
    assert [s.name for s in spans if parent_of(spans, s) is after] == [
        "enrich",
        "ChatPromptTemplate",
        "chat scripted-fake-1",
        "StrOutputParser",
    ]
    assert roots["req-open"].attributes["spanhook.stream.closed_early"] is True
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert detach_errors() == []


def caller_span(spans: Any) -> Any:
    return next(s for s in spans if s.name == "caller")


def test_abandoned_async_streams_then_a_request_in_the_same_task_no_cross_talk(
    traced: InMemorySpanExporter,
    model: ScriptedToolChatModel,
    tools: list[Any],
    detach_errors: Callable[[], list[str]],
) -> None:
    chain = build_chain(model)
    agent = build_agent(model, tools)

    async def main() -> None:
        s1 = chain.astream({"topic": "one"}, {"run_name": "req-1"})
        await s1.__anext__()
        assert trace.get_current_span() is trace.INVALID_SPAN
        s2 = agent.astream({"messages": [("human", "two")]}, {"run_name": "req-2"})
        await s2.__anext__()
        assert trace.get_current_span() is trace.INVALID_SPAN
        del s1, s2
        gc.collect()
        await asyncio.sleep(0.05)  # the loop finalises the abandoned generators
        await agent.ainvoke({"messages": [("human", "three")]}, {"run_name": "req-3"})
        assert trace.get_current_span() is trace.INVALID_SPAN

    asyncio.run(main())
    spans = traced.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert sorted(r.name for r in roots) == ["invoke_agent req-2", "invoke_agent req-3", "req-1"]
    for root in roots:
        in_trace = [s for s in spans if s.context.trace_id == root.context.trace_id]
        assert all(s is root or s.parent is not None for s in in_trace)
    req3 = next(r for r in roots if r.name == "invoke_agent req-3")
    assert len([s for s in spans if s.context.trace_id == req3.context.trace_id]) == 16
    assert detach_errors() == []


def test_runnable_lambda_body_current_and_building_makes_no_span(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, tools: list[Any]
) -> None:
    build_agent(model, tools)
    build_chain(model)
    assert traced.get_finished_spans() == ()
    seen: list[str] = []
    lam = RunnableLambda(lambda x: seen.append(trace.get_current_span().name) or x)  # type: ignore[attr-defined, func-returns-value]
    lam.invoke(1)
    lam.batch([1, 2, 3])
    assert seen == ["RunnableLambda"] * 4


BODY_MARK: ContextVar[str] = ContextVar("body_mark", default="unset")


class MarkingModel(ScriptedToolChatModel):
    """Sets a context variable of the application's inside its body, as some model
    clients do (a request id, a retry budget)."""

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        BODY_MARK.set(getattr(trace.get_current_span(), "name", "no span"))
        return super()._generate(*args, **kwargs)


def test_a_model_body_runs_under_its_span_and_its_own_context_changes_stay_as_untraced(
    memory_exporter: InMemorySpanExporter, model: ScriptedToolChatModel
) -> None:
    marking = MarkingModel(server_url=model.server_url)
    spanhook.langchain.uninstrument()
    marking.invoke("hi")
    untraced = BODY_MARK.get()  # what langchain-core does alone: the body's change stays
    BODY_MARK.set("unset")
    spanhook.langchain.instrument()
    with trace.get_tracer("app").start_as_current_span("caller") as caller:
        marking.invoke("hi")
        assert trace.get_current_span() is caller
    assert untraced == "no span"
    assert BODY_MARK.get() == "chat scripted-fake-1"  # set under the model's span, kept
