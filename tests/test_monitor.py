"""MonitorCallbackHandler: per-run time and memory, aggregates per kind and name, token
totals (streamed runs included), correct under threads and asyncio concurrency."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
from typing import Any

import pytest

from helpers import Recorder
from spanhook.callbacks import MonitorCallbackHandler, MonitorHandler
from spanhook.callbacks.usage import usage_from_result
from spanhook.chains import LLMChain
from spanhook.demo import build_agent
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.tools import Tool

QUESTION = "What is 12 * (3 + 4)?"


def test_agent_run_aggregates_per_kind_and_name() -> None:
    monitor, rec = MonitorHandler(), Recorder()
    assert build_agent(verbose=False).run(QUESTION, callbacks=[monitor, rec]) == "84"
    report = monitor.report()
    assert [(s.kind, s.name, s.count) for s in report.stats] == [
        ("agent", "demo-agent", 1),
        ("llm", "OfflineLLM", 2),
        ("tool", "calculator", 1),
    ]
    assert report.active_runs == 0 and report.finished_runs == 4
    llm = report.get("llm", "OfflineLLM")
    assert llm is not None and llm.errors == 0
    # token totals = the usage both (streamed) model results reported
    usages = [usage_from_result(e.args[0]) for e in rec.of("on_llm_end")]
    assert all(u is not None for u in usages)
    assert llm.prompt_tokens == sum(u.prompt_tokens for u in usages if u) > 0
    assert llm.completion_tokens == sum(u.completion_tokens for u in usages if u) > 0
    assert llm.total_tokens == llm.prompt_tokens + llm.completion_tokens
    assert llm.max_duration_s <= llm.total_duration_s
    assert llm.mean_duration_s == pytest.approx(llm.total_duration_s / 2)
    # the agent's wall time contains its children's
    agent = report.get("agent", "demo-agent")
    assert agent is not None and agent.total_duration_s >= llm.total_duration_s
    # per-run records carry the run ids the handlers saw
    records = monitor.records()
    assert {r.run_id for r in records} == rec.run_ids()
    assert all(r.rss_start_bytes and r.rss_end_bytes for r in records)
    assert report.to_dict()["stats"][1]["mean_duration_s"] == llm.mean_duration_s


def test_errors_counted_by_type() -> None:
    monitor = MonitorCallbackHandler()

    def flaky(x: str) -> str:
        if x == "bad":
            raise ValueError("bad input")
        return x

    tool = Tool(name="flaky", func=flaky, description="sometimes fails")
    tool.run("good", callbacks=[monitor])
    for _ in range(2):
        with pytest.raises(ValueError):
            tool.run("bad", callbacks=[monitor])
    stats = monitor.report().get("tool", "flaky")
    assert stats is not None
    assert (stats.count, stats.errors, stats.error_types) == (3, 2, {"ValueError": 2})
    assert [r.ok for r in monitor.records()] == [True, False, False]


def test_memory_tracing_measures_the_run_that_allocates() -> None:
    size = 8 * 1024 * 1024
    keep: list[bytes] = []

    def allocate(_: str) -> str:
        buf = bytearray(size)  # freed before the run ends: shows in peak, not in net
        keep.append(b"k" * (size // 4))  # kept: shows in net
        return str(len(buf))

    def small(_: str) -> str:
        return "ok"

    was_tracing = tracemalloc.is_tracing()
    monitor = MonitorCallbackHandler(trace_memory=True)
    try:
        Tool(name="big", func=allocate, description="").run("x", callbacks=[monitor])
        Tool(name="small", func=small, description="").run("x", callbacks=[monitor])
        report = monitor.report()
    finally:
        monitor.close()
    assert tracemalloc.is_tracing() == was_tracing  # stopped again only if we started it
    big, tiny = report.get("tool", "big"), report.get("tool", "small")
    assert big is not None and tiny is not None
    # process-wide figures: other objects freed meanwhile may shave off a few KiB
    assert big.max_peak_alloc_bytes is not None and big.max_peak_alloc_bytes >= size * 0.95
    assert big.total_net_alloc_bytes is not None
    assert size // 4 * 0.95 <= big.total_net_alloc_bytes < size // 2
    assert tiny.max_peak_alloc_bytes is not None and tiny.max_peak_alloc_bytes < size // 8
    assert "peak KiB" in monitor.summary()


def test_nested_peak_is_credited_to_parent_and_child() -> None:
    size = 4 * 1024 * 1024

    def allocate(_: str) -> str:
        return str(len(bytearray(size)))

    class Outer(LLMChain):
        def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
            Tool(name="inner", func=allocate, description="").run("x")
            return super()._call(inputs, run_manager)

    monitor = MonitorCallbackHandler(trace_memory=True)
    try:
        Outer(
            llm=OfflineLLM(), prompt=PromptTemplate.from_template("1 + {n} = "), name="outer"
        ).run(n=1, callbacks=[monitor])
    finally:
        monitor.close()
    report = monitor.report()
    inner, outer, llm = (
        report.get("tool", "inner"),
        report.get("chain", "outer"),
        report.get("llm", "OfflineLLM"),
    )
    assert inner and outer and llm
    assert inner.max_peak_alloc_bytes is not None and inner.max_peak_alloc_bytes >= size * 0.95
    assert outer.max_peak_alloc_bytes is not None and outer.max_peak_alloc_bytes >= size * 0.95
    # the model call ran after the allocation was freed: its own peak is small
    assert llm.max_peak_alloc_bytes is not None and llm.max_peak_alloc_bytes < size // 4


def test_concurrent_threads_are_keyed_by_run_id() -> None:
    monitor = MonitorCallbackHandler()
    llm = OfflineLLM(streaming=True)
    prompts = [f"What is {i} * 2?" for i in range(16)]
    assert llm.batch(prompts, callbacks=[monitor], max_concurrency=8) == [
        str(i * 2) for i in range(16)
    ]
    threads: list[threading.Thread] = []
    for i in range(4):
        t = threading.Thread(
            target=llm.invoke, args=(f"{i} + {i} = ",), kwargs={"callbacks": [monitor]}
        )
        threads.append(t)
        t.start()
    for t in threads:
        t.join()
    report = monitor.report()
    stats = report.get("llm", "OfflineLLM")
    assert stats is not None and stats.count == 20 and stats.errors == 0
    assert report.active_runs == 0
    assert len({r.run_id for r in monitor.records()}) == 20


def test_concurrent_asyncio_tasks() -> None:
    monitor = MonitorCallbackHandler()

    async def main() -> list[str]:
        agent = build_agent(verbose=False)
        return await asyncio.gather(*(agent.arun(QUESTION, callbacks=[monitor]) for _ in range(5)))

    assert asyncio.run(main()) == ["84"] * 5
    report = monitor.report()
    assert [(s.kind, s.count) for s in report.stats] == [("agent", 5), ("llm", 10), ("tool", 5)]
    assert report.active_runs == 0
    # parent links stay per task: every llm record's parent is one of the agent runs
    records = monitor.records()
    agents = {r.run_id for r in records if r.kind == "agent"}
    assert {r.parent_run_id for r in records if r.kind == "llm"} == agents


def test_summary_table_and_reset() -> None:
    monitor = MonitorCallbackHandler(track_rss=False)
    LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("1 + {n} = "), name="adder").run(
        n=2, callbacks=[monitor]
    )
    lines = monitor.summary().splitlines()
    assert lines[0].split() == [
        "kind",
        "name",
        "count",
        "errors",
        "mean",
        "ms",
        "max",
        "ms",
        "total",
        "ms",
        "tokens",
    ]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[:4] == ["chain", "adder", "1", "0"]
    assert lines[3].split()[:4] == ["llm", "OfflineLLM", "1", "0"]
    assert lines[3].split()[-1] == "5"  # "1 + 2 = " is 4 tokens, "3" is 1
    assert all(r.rss_start_bytes is None for r in monitor.records())
    monitor.reset()
    assert monitor.report().stats == [] and monitor.records() == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_records"):
        MonitorCallbackHandler(max_records=-1)
