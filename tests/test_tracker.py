"""``RunTracker``: the run's life as three hooks, with what the runtime knows of each run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.callbacks import RunInfo, RunTracker
from spanhook.llms import FakeListLLM, OfflineLLM
from spanhook.tools import Tool


class Log(RunTracker):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, RunInfo, Any]] = []

    def run_started(self, run: RunInfo) -> None:
        self.log.append(("start", run, run.inputs))

    def run_ended(self, run: RunInfo, output: Any, kwargs: dict[str, Any]) -> None:
        self.log.append(("end", run, output))

    def run_failed(self, run: RunInfo, error: BaseException, kwargs: dict[str, Any]) -> None:
        self.log.append(("error", run, error))


def _agent() -> AgentExecutor:
    return AgentExecutor(llm=OfflineLLM(), tools=[calculator_tool()], name="calc-agent")


def test_a_tracker_learns_kind_name_ids_and_timing_from_the_run(
    memory_exporter: InMemorySpanExporter,
) -> None:
    t = Log()
    _agent().invoke({"input": "What is 6 * 7?"}, callbacks=[t])
    spans = {s.attributes["spanhook.run_id"]: s for s in memory_exporter.get_finished_spans()}  # type: ignore[index]
    starts = [run for what, run, _ in t.log if what == "start"]
    ends = [run for what, run, _ in t.log if what == "end"]
    assert [r.kind for r in starts][:2] == ["agent", "llm"]  # agent: not just "chain"
    assert starts[0].name == "calc-agent"
    assert {r.run_id for r in starts} == {r.run_id for r in ends}
    for run in starts:
        span = spans[str(run.run_id)]
        assert run.trace_id == format(span.context.trace_id, "032x")  # type: ignore[union-attr]
        assert run.span_id == format(span.context.span_id, "016x")  # type: ignore[union-attr]
        assert run.duration_ms is not None and run.duration_ms >= 0
        assert (run.parent_run_id is None) == (span.parent is None)
    assert t.active_runs() == []


def test_a_tracker_sees_failures_and_async_runs_from_its_worker_thread() -> None:
    def explode(x: str) -> str:
        raise ValueError("no")

    t = Log()
    tool = Tool(name="explode", func=explode, description="fails")
    with pytest.raises(ValueError, match="no"):
        asyncio.run(tool.arun("x", callbacks=[t]))
    assert [(what, run.kind, run.name) for what, run, _ in t.log] == [
        ("start", "tool", "explode"),
        ("error", "tool", "explode"),
    ]
    assert isinstance(t.log[1][2], ValueError)


def test_an_end_without_a_seen_start_is_reported_with_what_the_event_says() -> None:
    import uuid

    t = Log()
    t.on_llm_end("response", run_id=uuid.uuid4(), parent_run_id=None, tags=["x"])
    ((what, run, output),) = t.log
    assert (what, run.kind, run.start_ns, run.tags, output) == (
        "end",
        "llm",
        None,
        ["x"],
        "response",
    )
    # a start from outside spanhook's runtime (no run passed): the event's name and kind
    t.on_tool_start({"name": "calc"}, "1 + 1", run_id=uuid.uuid4(), parent_run_id=None, tags=[])
    assert (t.log[-1][1].kind, t.log[-1][1].name, t.log[-1][1].trace_id) == ("tool", "calc", None)


def test_count_token_numbers_the_streamed_tokens_of_each_active_run() -> None:
    import uuid

    class Tokens(Log):
        def __init__(self) -> None:
            super().__init__()
            self.indexes: list[int] = []

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.indexes.append(self.count_token(kwargs["run_id"]))

    t = Tokens()
    list(FakeListLLM(responses=["one two three"]).stream("q", config={"callbacks": [t]}))
    ((_, run, _),) = [entry for entry in t.log if entry[0] == "end"]
    assert run.tokens == len(t.indexes) > 1
    assert t.indexes == list(range(run.tokens))
    assert t.count_token(uuid.uuid4()) == -1  # not an active run
