"""1,000 concurrent async agent requests, each with its own handler and its own exporter
(behind its own synchronous span processor: a bare exporter gets a background worker
thread, and 1,000 of them would measure thread scheduling): each sees exactly its own
request, whose span tree equals langchain-core's own run tree."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from lc_app import LocalServer, ScriptedToolChatModel, build_agent, make_tools
from lc_checks import by_name, collector_edges, parent_of, span_edges
from spanhook.langchain.tracer import TRACER

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")

REQUESTS = 1000


def test_thousand_concurrent_requests_each_see_only_their_own(
    traced: InMemorySpanExporter, model: ScriptedToolChatModel, server: LocalServer
) -> None:
    collectors = [RunCollectorCallbackHandler() for _ in range(REQUESTS)]
    exporters = [InMemorySpanExporter() for _ in range(REQUESTS)]

    async def main() -> None:
        # one client for the app, as a service would have: 1,000 requests in flight, at
        # most 32 connections to the local server
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(limits=limits, timeout=120) as shared:
            agent = build_agent(model, make_tools(server.url, shared))
            await _requests(agent)

    async def _requests(agent: Any) -> None:
        await asyncio.gather(
            *(
                agent.ainvoke(
                    {"messages": [("human", f"item {i}")]},
                    {
                        "callbacks": [collectors[i], SimpleSpanProcessor(exporters[i])],
                        "run_name": f"req-{i}",
                        "metadata": {"rid": i},
                    },
                )
                for i in range(REQUESTS)
            )
        )

    asyncio.run(main())
    assert spanhook.force_flush(timeout=30)
    assert TRACER.runs == {} and TRACER.pending == {}
    trace_ids = set()
    for i, (collector, exporter) in enumerate(zip(collectors, exporters, strict=True)):
        (root_run,) = collector.traced_runs
        assert root_run.name == f"req-{i}"
        spans = exporter.get_finished_spans()
        assert len(spans) == 16  # 15 runs + the tool's HTTP call
        assert span_edges(spans) == collector_edges(collector)
        assert {s.attributes.get("metadata.rid", i) for s in spans} == {i}
        assert all(s.attributes.get("spanhook.metadata.rid", i) == i for s in spans)
        (root,) = [s for s in spans if s.parent is None]
        assert root.name == f"invoke_agent req-{i}"
        (get,) = by_name(spans, "GET")
        assert parent_of(spans, get).name == "execute_tool fetch_data"  # type: ignore[union-attr]
        (trace_id,) = {s.context.trace_id for s in spans}
        trace_ids.add(trace_id)
    assert len(trace_ids) == REQUESTS
    assert len(traced.get_finished_spans()) == 16 * REQUESTS
