"""Runs are spans: one per run, parent = enclosing run, run id attribute, error status on
every failure, ended on every exit path; OTel set-up with and without an application
provider."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import spanhook
from app import build
from helpers import Recorder
from spanhook.chains import Chain
from spanhook.chat_models import FakeListChatModel
from spanhook.retrievers import InMemoryRetriever
from spanhook.tools import Tool


def by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {s.name: s for s in exporter.get_finished_spans()}


def test_one_span_per_run_with_parent_links_and_run_ids(
    memory_exporter: InMemorySpanExporter,
) -> None:
    rec = Recorder()
    outer, *_ = build()
    outer.invoke({"q": "hi"}, callbacks=[rec])
    spans = by_name(memory_exporter)
    assert set(spans) == {
        "outer_chain",
        "inner_chain",
        "text_completion fake-list",
        "execute_tool echo_tool",
    }
    assert spans["outer_chain"].parent is None
    assert spans["inner_chain"].parent.span_id == spans["outer_chain"].context.span_id
    for child in ("text_completion fake-list", "execute_tool echo_tool"):
        assert spans[child].parent.span_id == spans["inner_chain"].context.span_id
    assert len({s.context.trace_id for s in spans.values()}) == 1
    # the span carries the handler's run_id, so a trace search finds it
    handler_ids = {str(e.run_id) for e in rec.starts()}
    assert {s.attributes["spanhook.run_id"] for s in spans.values()} == handler_ids
    kinds = {s.name: s.attributes["spanhook.run.kind"] for s in spans.values()}
    assert kinds == {
        "outer_chain": "chain",
        "inner_chain": "chain",
        "text_completion fake-list": "llm",
        "execute_tool echo_tool": "tool",
    }


def test_chat_model_retriever_and_agent_kinds(memory_exporter: InMemorySpanExporter) -> None:
    from spanhook.agents import AgentExecutor, calculator_tool
    from spanhook.llms import OfflineLLM

    FakeListChatModel(responses=["x"]).invoke("hi")
    InMemoryRetriever(["alpha beta", "gamma"]).invoke("alpha")
    AgentExecutor(llm=OfflineLLM(), tools=[calculator_tool()], name="calc-agent").run(
        "What is 2 + 3?"
    )
    spans = by_name(memory_exporter)
    assert spans["chat fake-list-chat"].attributes["spanhook.run.kind"] == "chat_model"
    assert spans["retrieval InMemoryRetriever"].attributes["spanhook.run.kind"] == "retriever"
    agent = spans["invoke_agent calc-agent"]
    assert agent.attributes["spanhook.run.kind"] == "agent"
    assert agent.attributes["gen_ai.agent.name"] == "calc-agent"
    tool = spans["execute_tool calculator"]
    assert tool.parent.span_id == agent.context.span_id
    assert tool.attributes["gen_ai.tool.name"] == "calculator"


class Failing(Chain):
    input_keys = ["x"]
    output_keys = ["y"]
    error: BaseException = ValueError("boom")

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize("error", [ValueError("boom"), KeyboardInterrupt(), SystemExit(3)])
def test_failure_sets_error_status_records_exception_and_calls_on_error(
    error: BaseException, memory_exporter: InMemorySpanExporter
) -> None:
    rec = Recorder()
    chain = Failing(error=error)
    with pytest.raises(type(error)):
        chain.invoke({"x": 1}, callbacks=[rec])
    (span,) = memory_exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == type(error).__qualname__
    exc_event = span.events[-1]
    assert exc_event.name == "exception"
    assert exc_event.attributes["exception.type"].endswith(type(error).__name__)
    assert rec.names() == ["on_chain_start", "on_chain_error"]
    assert rec.of("on_chain_error")[0].args[0] is error
    assert spanhook.current_run() is None


def test_error_in_a_nested_tool_propagates_unchanged_through_every_level(
    memory_exporter: InMemorySpanExporter,
) -> None:
    boom = RuntimeError("tool broke")

    def broken(_: str) -> str:
        raise boom

    rec = Recorder()
    outer, inner, _, _ = build()
    inner.tool = Tool(name="broken", func=broken, description="fails")
    with pytest.raises(RuntimeError) as info:
        outer.invoke({"q": "hi"}, callbacks=[rec])
    assert info.value is boom
    assert [e.event for e in rec.events if e.event.endswith("_error")] == [
        "on_tool_error",
        "on_chain_error",
        "on_chain_error",
    ]
    assert all(e.args[0] is boom for e in rec.events if e.event.endswith("_error"))
    statuses = {s.name: s.status.status_code for s in memory_exporter.get_finished_spans()}
    assert statuses["execute_tool broken"] == StatusCode.ERROR
    assert statuses["text_completion fake-list"] == StatusCode.UNSET
    assert statuses["outer_chain"] == StatusCode.ERROR


def test_works_with_no_otel_configuration_at_all() -> None:
    rec = Recorder()
    outer, *_ = build()
    assert outer.invoke({"q": "hi"}, callbacks=[rec])["out"] == "tool(llm-answer)"
    assert len(rec.events) == 8
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # never installed one


def test_application_provider_is_used_and_its_span_is_the_parent(
    memory_exporter: InMemorySpanExporter,
) -> None:
    provider = trace.get_tracer_provider()
    app_tracer = trace.get_tracer("my-app")
    outer, *_ = build()
    with app_tracer.start_as_current_span("POST /ask", kind=SpanKind.SERVER) as request_span:
        outer.invoke({"q": "hi"})
    spans = by_name(memory_exporter)
    assert spans["outer_chain"].parent.span_id == request_span.get_span_context().span_id
    assert spans["outer_chain"].context.trace_id == request_span.get_span_context().trace_id
    assert trace.get_tracer_provider() is provider


def test_user_spans_inside_a_tool_nest_under_the_tool(
    memory_exporter: InMemorySpanExporter,
) -> None:
    app_tracer = trace.get_tracer("my-app")

    def fetch(q: str) -> str:
        with app_tracer.start_as_current_span("GET /search"):
            return q.upper()

    outer, inner, _, _ = build()
    inner.tool = Tool(name="fetch", func=fetch, description="http")
    outer.invoke({"q": "hi"})
    spans = by_name(memory_exporter)
    assert spans["GET /search"].parent.span_id == spans["execute_tool fetch"].context.span_id
    # after the run, the application's context is untouched
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_configure_never_replaces_an_application_provider() -> None:
    app_provider = TracerProvider()
    exporter = InMemorySpanExporter()
    app_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(app_provider)
    assert spanhook.configure(exporters="none") is app_provider
    assert trace.get_tracer_provider() is app_provider
    outer, *_ = build()
    outer.invoke({"q": "hi"})
    assert len(exporter.get_finished_spans()) == 4


def test_with_no_consumer_runs_get_non_recording_spans_with_valid_ids() -> None:
    """No application provider and no scoped consumer: nothing would read the span, so the
    run gets a non-recording span; its ids are still valid and nested runs share its trace."""
    seen: list[Any] = []
    probe = RunProbe(seen)
    outer, *_ = build()
    outer.invoke({"q": "hi"}, callbacks=[probe])
    spans = [run.span for run in seen]
    assert len(spans) == 4
    assert not any(s.is_recording() for s in spans)
    contexts = [s.get_span_context() for s in spans]
    assert all(c.is_valid for c in contexts)
    assert len({c.trace_id for c in contexts}) == 1
    assert len({c.span_id for c in contexts}) == 4
    # a scoped exporter in the same app makes that request's spans real again
    exporter = InMemorySpanExporter()
    outer.invoke({"q": "hi"}, callbacks=[probe, SimpleSpanProcessor(exporter)])
    assert len(exporter.get_finished_spans()) == 4
    assert {s.context.span_id for s in exporter.get_finished_spans()} == {
        run.span.get_span_context().span_id for run in seen[4:]
    }


class RunProbe(Recorder):
    """Keeps the current run at each start event."""

    def __init__(self, seen: list[Any]) -> None:
        super().__init__("probe")
        self.seen = seen

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.seen.append(spanhook.current_run())

    def on_llm_start(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.seen.append(spanhook.current_run())

    def on_tool_start(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.seen.append(spanhook.current_run())


def test_finished_runs_are_freed_without_the_cycle_collector() -> None:
    import gc
    import weakref

    refs: list[weakref.ref[Any]] = []

    class Keep(Recorder):
        def on_chain_start(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
            run = spanhook.current_run()
            assert run is not None
            refs.append(weakref.ref(run))

    outer, *_ = build()
    gc.disable()
    try:
        outer.invoke({"q": "hi"}, callbacks=[Keep()])
        assert len(refs) == 2
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def test_a_request_can_choose_the_root_run_id_before_it_starts(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """Known ids: the caller picks the root run's id (e.g. to attach feedback later); nested
    runs get their own ids, and the span carries the chosen one."""
    import uuid

    chosen = uuid.uuid4()
    rec = Recorder()
    outer, *_ = build()
    outer.invoke({"q": "hi"}, config={"run_id": chosen, "run_name": "ask", "callbacks": [rec]})
    root = rec.starts()[0]
    assert root.run_id == chosen and root.kwargs["name"] == "ask"
    assert [e.run_id for e in rec.starts()].count(chosen) == 1
    assert all(e.parent_run_id == chosen for e in rec.starts() if e.name == "inner_chain")
    spans = {s.attributes["spanhook.run_id"]: s for s in memory_exporter.get_finished_spans()}
    assert spans[str(chosen)].name == "ask"
    with pytest.raises(TypeError, match=r"run_id .* must be a uuid\.UUID"):
        outer.invoke({"q": "hi"}, config={"run_id": "not-a-uuid"})
    with pytest.raises(TypeError, match="unknown keys \\['colour'\\]"):
        outer.invoke({"q": "hi"}, config={"colour": "red"})


@pytest.mark.parametrize("which", ["chain.batch", "chain.abatch", "model.batch", "model.abatch"])
def test_a_run_id_given_to_a_batch_names_the_first_input_only(which: str) -> None:
    """Run ids stay unique: the chosen id goes to the first input's run (langchain-core
    does the same, with a warning); the other inputs' runs get fresh ids."""
    import asyncio
    import uuid

    chosen = uuid.uuid4()
    rec = Recorder()
    outer, *_ = build()
    target: Any = outer if which.startswith("chain") else FakeListChatModel(responses=["r"])
    inputs = (
        [{"q": f"in{i}"} for i in range(4)] if target is outer else [f"in{i}" for i in range(4)]
    )
    config = {"run_id": chosen, "callbacks": [rec]}
    with pytest.warns(UserWarning, match="used only for the first of the 4 inputs"):
        if which.endswith(".batch"):
            target.batch(inputs, config=config)
        else:
            asyncio.run(target.abatch(inputs, config=config))
    roots = [e for e in rec.starts() if e.parent_run_id is None]
    assert len(roots) == 4 and len({e.run_id for e in rec.starts()}) == len(rec.starts())
    (first,) = [e for e in roots if e.run_id == chosen]
    if target is outer:
        assert first.args[1] == {"q": "in0"}
    else:
        assert [m.content for m in first.args[1][0]] == ["in0"]


@pytest.mark.parametrize("attribute_limit", [None, "40"])
def test_bulk_metadata_never_evicts_a_runs_core_attributes(
    monkeypatch: pytest.MonkeyPatch, attribute_limit: str | None
) -> None:
    """Hundreds of metadata entries: the span keeps its ids, kind and GenAI attributes (the
    SDK would evict the oldest attributes once its limit is reached); entries past the budget
    go into one JSON attribute, secrets masked, so nothing is silently lost."""
    import json

    if attribute_limit is not None:
        monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", attribute_limit)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # reads the limit from the environment, as the SDK does
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metadata = {f"k{i:03d}": i for i in range(300)}
    metadata["api_key"] = "sk-must-not-leak"
    model = FakeListChatModel(responses=["answer"])
    model.invoke("hi", metadata=metadata)

    (span,) = exporter.get_finished_spans()
    a = dict(span.attributes or {})
    assert a["spanhook.run.kind"] == "chat_model" and "spanhook.run_id" in a
    assert a["gen_ai.request.model"] == "fake-list-chat" and a["gen_ai.operation.name"] == "chat"
    assert "gen_ai.response.model" in a and "gen_ai.response.finish_reasons" in a
    own = [k for k in a if k.startswith("spanhook.metadata.k")]
    budget = 64 if attribute_limit is None else 0
    assert len(own) == budget and span.dropped_attributes == 0
    overflow = json.loads(str(a["spanhook.metadata.overflow"]))
    assert len(overflow) == 301 - budget and overflow["api_key"] == "***"
    assert "sk-must-not-leak" not in str(a)
