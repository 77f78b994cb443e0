"""DESIGN section 3, row by row, on the nested app outer -> inner -> (llm, tool)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import spanhook
from app import build
from helpers import Event, Recorder

ALL_EIGHT = [
    ("on_chain_start", "outer_chain"),
    ("on_chain_start", "inner_chain"),
    ("on_llm_start", "FakeListLLM"),
    ("on_llm_end", None),
    ("on_tool_start", "echo_tool"),
    ("on_tool_end", None),
    ("on_chain_end", None),
    ("on_chain_end", None),
]


def shape(rec: Recorder) -> list[tuple[str, str | None]]:
    return [(e.event, e.name if e.event.endswith("_start") else None) for e in rec.events]


def runs_by_name(events: list[Event]) -> dict[str, Event]:
    return {str(e.name): e for e in events if e.event.endswith("_start")}


def test_request_callbacks_see_the_request_and_every_sub_run() -> None:
    outer, *_ = build()
    rec = Recorder()
    assert outer.invoke({"q": "hi"}, callbacks=[rec])["out"] == "tool(llm-answer)"
    assert shape(rec) == ALL_EIGHT
    runs = runs_by_name(rec.events)
    assert runs["outer_chain"].parent_run_id is None
    assert runs["inner_chain"].parent_run_id == runs["outer_chain"].run_id
    assert runs["FakeListLLM"].parent_run_id == runs["inner_chain"].run_id
    assert runs["echo_tool"].parent_run_id == runs["inner_chain"].run_id
    # every end/error names the run it ends, and every start has exactly one end
    starts = [e.run_id for e in rec.events if e.event.endswith("_start")]
    ends = [e.run_id for e in rec.events if e.event.endswith(("_end", "_error"))]
    assert sorted(map(str, starts)) == sorted(map(str, ends))


def test_request_callbacks_of_one_request_do_not_leak_into_the_next() -> None:
    outer, *_ = build()
    rec = Recorder()
    outer.invoke({"q": "hi"}, callbacks=[rec])
    outer.invoke({"q": "again"})
    assert len(rec.events) == 8


def test_constructor_callbacks_on_outer_chain_see_only_its_own_runs() -> None:
    rec = Recorder()
    outer, *_ = build(outer_kw={"callbacks": [rec]})
    outer.invoke({"q": "hi"})
    assert shape(rec) == [("on_chain_start", "outer_chain"), ("on_chain_end", None)]
    outer.run("again")
    assert len(rec.events) == 4


def test_constructor_callbacks_on_the_llm_see_only_llm_runs_with_their_parent_link() -> None:
    llm_rec, req = Recorder("llm"), Recorder("req")
    outer, *_ = build(llm_kw={"callbacks": [llm_rec]})
    outer.invoke({"q": "hi"}, callbacks=[req])
    assert llm_rec.names() == ["on_llm_start", "on_llm_end"]
    inner_run = runs_by_name(req.events)["inner_chain"].run_id
    assert llm_rec.events[0].parent_run_id == inner_run
    assert llm_rec.events[0].args[1] == ["hi"]


def test_request_callbacks_given_to_a_nested_call_see_it_and_below_only() -> None:
    nested = Recorder("nested")
    outer, inner, _llm, _tool = build()

    def call_inner(inputs: dict[str, Any]) -> dict[str, Any]:
        return inner(inputs, return_only_outputs=True, callbacks=[nested])

    outer._call = call_inner  # type: ignore[method-assign]
    top = Recorder("top")
    outer.invoke({"q": "hi"}, callbacks=[top])
    assert len(top.events) == 8
    assert [n for n, _ in shape(nested)] == [n for n, _ in ALL_EIGHT[1:7]]
    assert (
        runs_by_name(nested.events)["inner_chain"].parent_run_id
        == runs_by_name(top.events)["outer_chain"].run_id
    )


def test_child_constructor_callbacks_never_replace_inherited_ones() -> None:
    """A child with its own handlers keeps the parent link and the inherited handlers."""
    child_rec, req = Recorder("child"), Recorder("req")
    outer, *_ = build(inner_kw={"callbacks": [child_rec]})
    outer.invoke({"q": "hi"}, callbacks=[req])
    assert len(req.events) == 8
    assert child_rec.names() == ["on_chain_start", "on_chain_end"]
    assert child_rec.events[0].parent_run_id == runs_by_name(req.events)["outer_chain"].run_id


def test_same_handler_present_twice_gets_each_event_once() -> None:
    rec = Recorder()
    outer, *_ = build(outer_kw={"callbacks": [rec, rec]}, llm_kw={"callbacks": [rec]})
    outer.invoke({"q": "hi"}, callbacks=[rec, rec])
    assert shape(rec) == ALL_EIGHT


def test_verbose_prints_the_object_and_nested_runs(capsys: pytest.CaptureFixture[str]) -> None:
    outer, *_ = build(outer_kw={"verbose": True})
    outer.invoke({"q": "hi"})
    out = capsys.readouterr().out
    assert out.count("> Entering new outer_chain chain...") == 1
    assert out.count("> Entering new inner_chain chain...") == 1
    assert out.count("> Finished chain.") == 2
    tree = out[out.index("Span tree") :]
    for name in (
        "outer_chain",
        "inner_chain",
        "text_completion fake-list",
        "execute_tool echo_tool",
    ):
        assert name in tree
    # verbose is scoped to the object: a second, non-verbose object prints nothing
    plain, *_ = build()
    plain.invoke({"q": "hi"})
    assert capsys.readouterr().out == ""


def test_verbose_on_a_nested_object_covers_only_its_subtree(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outer, *_ = build(inner_kw={"verbose": True})
    outer.invoke({"q": "hi"})
    out = capsys.readouterr().out
    assert "outer_chain" not in out
    assert "> Entering new inner_chain chain..." in out
    assert "execute_tool echo_tool" in out[out.index("Span tree") :]


def test_constructor_tags_and_metadata_are_local_request_ones_inherited() -> None:
    rec = Recorder()
    outer, *_ = build(
        outer_kw={"tags": ["outer-tag"], "metadata": {"outer": 1}},
        llm_kw={"tags": ["llm-tag"], "metadata": {"llm": 1}},
    )
    outer.invoke({"q": "hi"}, callbacks=[rec], tags=["req-tag"], metadata={"req": 1})
    runs = runs_by_name(rec.events)
    assert runs["outer_chain"].kwargs["tags"] == ["req-tag", "outer-tag"]
    assert runs["outer_chain"].kwargs["metadata"] == {"req": 1, "outer": 1}
    assert runs["inner_chain"].kwargs["tags"] == ["req-tag"]
    assert runs["inner_chain"].kwargs["metadata"] == {"req": 1}
    assert runs["FakeListLLM"].kwargs["tags"] == ["req-tag", "llm-tag"]
    assert runs["FakeListLLM"].kwargs["metadata"] == {"req": 1, "llm": 1}
    assert runs["echo_tool"].kwargs["tags"] == ["req-tag"]
    # end events carry tags (not metadata), like langchain-core
    llm_end = rec.of("on_llm_end")[0]
    assert llm_end.kwargs["tags"] == ["req-tag", "llm-tag"]
    assert "metadata" not in llm_end.kwargs


def test_a_handler_changing_tags_or_metadata_in_place_affects_no_other_run() -> None:
    class Scribbler(spanhook.callbacks.BaseCallbackHandler):  # type: ignore[name-defined,misc]
        def on_chain_start(
            self,
            serialized: Any,
            inputs: Any,
            *,
            tags: list[str],
            metadata: dict[str, Any],
            **kwargs: Any,
        ) -> None:
            tags.append("scribbled")
            metadata["scribbled"] = True

    rec = Recorder()
    outer, *_ = build()
    outer.invoke({"q": "hi"}, callbacks=[Scribbler(), rec], tags=["req-tag"], metadata={"req": 1})
    runs = runs_by_name(rec.events)
    # the recorder is called after the scribbler, on the same run's objects...
    assert runs["outer_chain"].kwargs["tags"] == ["req-tag", "scribbled"]
    # ...but nested runs and siblings got their own, untouched
    assert runs["inner_chain"].kwargs["tags"] == ["req-tag", "scribbled"]  # its own start event
    assert runs["FakeListLLM"].kwargs["tags"] == ["req-tag"]
    assert runs["echo_tool"].kwargs["tags"] == ["req-tag"]
    assert runs["FakeListLLM"].kwargs["metadata"] == {"req": 1}
    outer.invoke({"q": "again"}, callbacks=[rec], tags=["req-tag"])
    assert rec.of("on_chain_start")[-1].kwargs["tags"] == ["req-tag"]


def test_otel_consumers_in_callbacks_follow_the_same_scoping() -> None:
    request_exporter = InMemorySpanExporter()
    llm_exporter = InMemorySpanExporter()
    inner_processor_sink = InMemorySpanExporter()
    outer, *_ = build(
        llm_kw={"callbacks": [llm_exporter]},
        inner_kw={"callbacks": [SimpleSpanProcessor(inner_processor_sink)]},
    )
    outer.invoke({"q": "hi"}, callbacks=[request_exporter])
    outer.invoke({"q": "not in the request"})
    assert spanhook.force_flush(timeout=5)
    names = sorted(s.name for s in request_exporter.get_finished_spans())
    assert names == sorted(
        ["outer_chain", "inner_chain", "text_completion fake-list", "execute_tool echo_tool"]
    )
    # constructor consumers: only their own object's runs, from both requests
    assert [s.name for s in llm_exporter.get_finished_spans()] == ["text_completion fake-list"] * 2
    assert [s.name for s in inner_processor_sink.get_finished_spans()] == ["inner_chain"] * 2
    # the request exporter saw one consistent tree
    spans = {s.name: s for s in request_exporter.get_finished_spans()}
    assert spans["inner_chain"].parent.span_id == spans["outer_chain"].context.span_id
    assert spans["execute_tool echo_tool"].parent.span_id == spans["inner_chain"].context.span_id


def test_classic_handlers_still_see_runs_whose_span_was_not_sampled() -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider(sampler=ALWAYS_OFF)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tp)
    scoped = InMemorySpanExporter()
    rec = Recorder()
    outer, *_ = build()
    outer.invoke({"q": "hi"}, callbacks=[rec, SimpleSpanProcessor(scoped)])
    assert shape(rec) == ALL_EIGHT
    runs = runs_by_name(rec.events)
    assert runs["FakeListLLM"].parent_run_id == runs["inner_chain"].run_id
    assert exporter.get_finished_spans() == ()
    assert scoped.get_finished_spans() == ()
