"""RunLogFilter: the application's own log records carry the run (and span) they were
written in: nested runs, worker threads, concurrent asyncio tasks, outside any run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from helpers import Recorder
from spanhook.chains import Chain
from spanhook.tools import Tool

app_log = logging.getLogger("tests.app")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.addFilter(spanhook.RunLogFilter())
        self.setFormatter(
            logging.Formatter(
                "%(message)s|%(run_kind)s|%(run_name)s|%(run_id)s|%(parent_run_id)s|%(trace_id)s|%(span_id)s"
            )
        )

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def logs() -> Iterator[Collect]:
    handler = Collect()
    app_log.addHandler(handler)
    app_log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        app_log.removeHandler(handler)


def lookup(query: str) -> str:
    app_log.info("looking up %s", query)
    return query.upper()


class Outer(Chain):
    input_keys = ["q"]
    output_keys = ["a"]

    def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        app_log.info("outer got %s", inputs["q"])
        tool = Tool(name="lookup", func=lookup, description="Looks up.")
        return {"a": tool.run(inputs["q"])}


def test_records_carry_the_run_and_span_they_were_written_in(
    logs: Collect, memory_exporter: InMemorySpanExporter
) -> None:
    rec = Recorder()
    Outer().invoke({"q": "x"}, callbacks=[rec])

    chain_start, tool_start = rec.of("on_chain_start")[0], rec.of("on_tool_start")[0]
    outer_line, tool_line = logs.records
    assert (outer_line.run_kind, outer_line.run_name, outer_line.run_id) == (
        "chain",
        "Outer",
        str(chain_start.run_id),
    )
    assert outer_line.parent_run_id == ""
    assert (tool_line.run_kind, tool_line.run_name, tool_line.run_id) == (
        "tool",
        "lookup",
        str(tool_start.run_id),
    )
    assert tool_line.parent_run_id == str(chain_start.run_id)

    spans = {s.name: s for s in memory_exporter.get_finished_spans()}
    tool_span, chain_span = spans["execute_tool lookup"], spans["Outer"]
    assert tool_line.trace_id == format(tool_span.context.trace_id, "032x") == outer_line.trace_id
    assert tool_line.span_id == format(tool_span.context.span_id, "016x")
    assert outer_line.span_id == format(chain_span.context.span_id, "016x")
    assert logs.lines[1] == (
        f"looking up x|tool|lookup|{tool_start.run_id}|{chain_start.run_id}|{tool_line.trace_id}|{tool_line.span_id}"
    )


def test_ids_are_there_without_any_otel_setup(logs: Collect) -> None:
    rec = Recorder()
    Outer().invoke({"q": "y"}, callbacks=[rec])
    tool_line = logs.records[1]
    assert tool_line.run_id == str(rec.of("on_tool_start")[0].run_id)
    assert len(tool_line.trace_id) == 32 and int(tool_line.trace_id, 16) != 0
    assert len(tool_line.span_id) == 16 and int(tool_line.span_id, 16) != 0


def test_outside_a_run_fields_are_empty_or_the_application_span(
    logs: Collect, memory_exporter: InMemorySpanExporter
) -> None:
    app_log.info("no run")
    with trace.get_tracer("app").start_as_current_span("http request") as span:
        app_log.info("in the app's span")
    _, in_span = logs.records
    assert logs.lines[0] == "no run||||||"
    assert in_span.run_id == "" and in_span.trace_id == format(
        span.get_span_context().trace_id, "032x"
    )
    assert in_span.span_id == format(span.get_span_context().span_id, "016x")


def test_worker_threads_and_asyncio_tasks_log_their_own_runs(logs: Collect) -> None:
    rec = Recorder()
    Outer().batch([{"q": f"t{i}"} for i in range(4)], callbacks=[rec])

    async def both() -> None:
        await asyncio.gather(*(Outer().ainvoke({"q": f"a{i}"}, callbacks=[rec]) for i in range(4)))

    asyncio.run(both())
    tool_runs = {str(e.args[1]): str(e.run_id) for e in rec.of("on_tool_start")}
    looked_up = [r for r in logs.records if r.getMessage().startswith("looking up")]
    assert len(looked_up) == 8
    for record in looked_up:
        query = record.getMessage().removeprefix("looking up ")
        assert record.run_id == tool_runs[query]  # each record names its own tool run
    assert len({r.run_id for r in looked_up}) == 8
