"""GenAIMetrics through MonitorHandler: real runs recorded on a real SDK MeterProvider
(in-memory reader), with the GenAI semantic-convention names, units and attributes, with and
without tracing, failures included."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import uuid4

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.callbacks import MonitorHandler
from spanhook.callbacks.metrics import (
    DURATION_BUCKETS,
    OPERATION_DURATION,
    RUN_DURATION,
    TOKEN_USAGE,
    GenAIMetrics,
)
from spanhook.callbacks.monitor import RunRecord
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.tools import Tool

QUESTION = "What is 12 * (3 + 4)?"
Points = dict[str, list[tuple[dict[str, Any], HistogramDataPoint, str]]]


def collect(reader: InMemoryMetricReader) -> Points:
    """Metric name -> [(attributes, point, unit)]."""
    data = reader.get_metrics_data()
    out: Points = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "spanhook"
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    assert isinstance(point, HistogramDataPoint)
                    out.setdefault(metric.name, []).append(
                        (dict(point.attributes or {}), point, metric.unit or "")
                    )
    return out


def monitored_agent(monitor: MonitorHandler, tools: list[Tool] | None = None) -> AgentExecutor:
    """An agent whose agent, model and tools all have the monitor as constructor callback."""
    return AgentExecutor(
        llm=OfflineLLM(callbacks=[monitor]),
        tools=tools
        or [Tool("calculator", calculator_tool().func, "arithmetic", callbacks=[monitor])],
        callbacks=[monitor],
        name="math-agent",
    )


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.mark.parametrize("traced", [False, True], ids=["no-tracing", "traced"])
def test_agent_runs_become_genai_metrics(
    reader: InMemoryMetricReader, traced: bool, request: pytest.FixtureRequest
) -> None:
    if traced:
        request.getfixturevalue("memory_exporter")
    metrics = GenAIMetrics(MeterProvider(metric_readers=[reader]))
    monitor = MonitorHandler(metrics=metrics)
    agent = monitored_agent(monitor)
    assert agent.run(QUESTION) == "84"
    assert agent.run("What is 2 + 3?") == "5"
    points = collect(reader)

    durations = points[OPERATION_DURATION]
    assert {unit for _, _, unit in durations} == {"s"}
    by_op = {
        (a["gen_ai.operation.name"], a.get("gen_ai.request.model")): (a, p) for a, p, _ in durations
    }
    assert set(by_op) == {
        ("invoke_agent", None),
        ("text_completion", "spanhook-offline-1"),
        ("execute_tool", None),
    }
    model_attrs, model_point = by_op[("text_completion", "spanhook-offline-1")]
    assert model_attrs["gen_ai.provider.name"] == "spanhook"
    assert "error.type" not in model_attrs
    assert model_point.count == 4  # two model calls per question
    assert list(model_point.explicit_bounds) == list(DURATION_BUCKETS)
    assert by_op[("execute_tool", None)][0]["gen_ai.tool.name"] == "calculator"
    assert by_op[("invoke_agent", None)][0]["gen_ai.agent.name"] == "math-agent"
    assert by_op[("invoke_agent", None)][1].count == 2
    # every measured duration is what the monitor measured
    records = monitor.records()
    assert model_point.sum == pytest.approx(
        sum(r.duration_s for r in records if r.kind == "llm"), rel=1e-9
    )

    tokens = {a["gen_ai.token.type"]: (a, p, unit) for a, p, unit in points[TOKEN_USAGE]}
    assert set(tokens) == {"input", "output"}
    llm_records = [r for r in records if r.kind == "llm"]
    assert tokens["input"][1].sum == sum(r.prompt_tokens for r in llm_records) > 0
    assert tokens["output"][1].sum == sum(r.completion_tokens for r in llm_records) > 0
    assert tokens["input"][2] == "{token}"
    assert tokens["input"][0]["gen_ai.operation.name"] == "text_completion"
    assert tokens["input"][0]["gen_ai.request.model"] == "spanhook-offline-1"

    kinds = {
        (a["spanhook.run.kind"], a["spanhook.run.name"]): p.count
        for a, p, _ in points[RUN_DURATION]
    }
    assert kinds == {
        ("agent", "math-agent"): 2,
        ("llm", "OfflineLLM"): 4,
        ("tool", "calculator"): 2,
    }


def test_failures_carry_error_type(reader: InMemoryMetricReader, memory_exporter: Any) -> None:
    metrics = GenAIMetrics(MeterProvider(metric_readers=[reader]))
    monitor = MonitorHandler(metrics=metrics)

    def divide(expression: str) -> str:
        left, right = expression.split("/")
        return str(int(left) // int(right))

    agent = monitored_agent(monitor, [Tool("calculator", divide, "divides", callbacks=[monitor])])
    with pytest.raises(ZeroDivisionError):
        agent.run("What is 1 / 0?")
    points = collect(reader)
    failed = {
        a["gen_ai.operation.name"]: a for a, _, _ in points[OPERATION_DURATION] if "error.type" in a
    }
    assert failed["execute_tool"]["error.type"] == "ZeroDivisionError"
    assert failed["invoke_agent"]["error.type"] == "ZeroDivisionError"
    runs = {a["spanhook.run.kind"]: a.get("error.type") for a, _, _ in points[RUN_DURATION]}
    assert runs == {"agent": "ZeroDivisionError", "llm": None, "tool": "ZeroDivisionError"}
    # failed model calls report no usage: no token measurement from them, only the good one
    assert [p.count for _, p, _ in points[TOKEN_USAGE]] == [1, 1]


def test_chains_only_in_run_duration_and_async_runs(reader: InMemoryMetricReader) -> None:
    metrics = GenAIMetrics(MeterProvider(metric_readers=[reader]), run_durations=True)
    monitor = MonitorHandler(metrics=metrics)
    chain = LLMChain(
        llm=OfflineLLM(streaming=True, callbacks=[monitor]),
        prompt=PromptTemplate.from_template("1 + {number} = "),
        callbacks=[monitor],
    )

    async def main() -> list[str]:
        return await asyncio.gather(*(chain.arun(number=n) for n in range(5)))

    assert asyncio.run(main()) == [str(1 + n) for n in range(5)]
    points = collect(reader)
    assert [a["gen_ai.operation.name"] for a, _, _ in points[OPERATION_DURATION]] == [
        "text_completion"
    ]
    assert points[OPERATION_DURATION][0][1].count == 5
    assert {a["spanhook.run.kind"]: p.count for a, p, _ in points[RUN_DURATION]} == {
        "chain": 5,
        "llm": 5,
    }


def test_run_durations_can_be_left_out(reader: InMemoryMetricReader) -> None:
    monitor = MonitorHandler(
        metrics=GenAIMetrics(MeterProvider(metric_readers=[reader]), run_durations=False)
    )
    LLMChain(
        llm=OfflineLLM(callbacks=[monitor]),
        prompt=PromptTemplate.from_template("{q}"),
        callbacks=[monitor],
    ).run(q="2 * 4")
    assert set(collect(reader)) == {OPERATION_DURATION, TOKEN_USAGE}


def test_a_failing_instrument_never_breaks_the_run(
    reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = GenAIMetrics(MeterProvider(metric_readers=[reader]))

    class Broken:
        def record(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("instrument down")

    metrics.operation_duration = Broken()  # type: ignore[assignment]
    monitor = MonitorHandler(metrics=metrics)
    with caplog.at_level(logging.ERROR, logger="spanhook.callbacks"):
        assert monitored_agent(monitor).run(QUESTION) == "84"
    assert monitor.report().finished_runs == 4
    assert "GenAIMetrics could not record run" in caplog.text
    assert RUN_DURATION in collect(reader)


def test_global_provider_and_unknown_kinds(reader: InMemoryMetricReader) -> None:
    from opentelemetry import metrics as otel_metrics

    metrics = GenAIMetrics(MeterProvider(metric_readers=[reader]))
    assert metrics.started("chain", "x", {"run_id": None}) is None
    # with no SDK installed globally the API's no-op meter is used: nothing raises
    assert isinstance(otel_metrics.get_meter_provider(), otel_metrics.MeterProvider)
    GenAIMetrics().finished(
        RunRecord(run_id=None, parent_run_id=None, kind="llm", name="m", ok=True, duration_s=0.1),  # type: ignore[arg-type]
        {"gen_ai.operation.name": "chat"},
    )


def test_unreadable_start_events_are_logged_not_raised(
    reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = GenAIMetrics(MeterProvider(metric_readers=[reader]))
    with caplog.at_level(logging.ERROR, logger="spanhook.callbacks"):
        assert metrics.started("llm", "m", {}) is None  # no run_id
    assert "could not read the attributes of a llm run" in caplog.text
    # without its GenAI attributes a run still counts in spanhook.run.duration
    record = RunRecord(uuid4(), None, "llm", "m", ok=True, duration_s=0.5)
    metrics.finished(record, None)
    points = collect(reader)
    assert set(points) == {RUN_DURATION}
    assert points[RUN_DURATION][0][1].sum == 0.5
