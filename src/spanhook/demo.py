"""``spanhook demo``: an agent answers a question with a tool call, offline and deterministic,
printed with verbose console output and its span tree."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.callbacks.base import BaseCallbackHandler
from spanhook.llms import OfflineLLM
from spanhook.retrievers import InMemoryRetriever
from spanhook.runtime.run import current_run
from spanhook.tools import Tool
from spanhook.tracing.viewers import JAEGER_UI_ENV as JAEGER_UI_ENV
from spanhook.tracing.viewers import trace_link

DEFAULT_QUESTION = "What is 12 * (3 + 4)?"
_EXPORT_ENV = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)

FACTS = [
    "spanhook turns every chain, model, tool, agent and retriever run into an OpenTelemetry span.",
    "Jaeger shows traces in its UI on port 16686.",
    "The OpenTelemetry Collector receives OTLP on port 4317 (gRPC) and 4318 (HTTP).",
]


class _TraceId(BaseCallbackHandler):
    """Remembers the trace id of the first run it sees."""

    def __init__(self) -> None:
        self.trace_id: str | None = None

    def on_chain_start(
        self, serialized: dict[str, Any], inputs: dict[str, Any], **kwargs: Any
    ) -> None:
        run = current_run()
        if self.trace_id is None and run is not None:
            self.trace_id = run.trace_id


def build_agent(verbose: bool = True) -> AgentExecutor:
    retriever = InMemoryRetriever(FACTS, k=1)
    docs = Tool(
        name="docs",
        func=lambda q: "\n".join(d.page_content for d in retriever.invoke(q)) or "nothing found",
        description="Looks up facts about spanhook, OpenTelemetry and Jaeger.",
    )
    return AgentExecutor(
        llm=OfflineLLM(streaming=True),
        tools=[calculator_tool(), docs],
        verbose=verbose,
        name="demo-agent",
    )


def export_requested() -> bool:
    return any(os.environ.get(v) for v in _EXPORT_ENV)


def langchain_missing() -> str | None:
    """Why ``--langchain`` cannot run here (``None``: it can)."""
    import importlib.util

    missing = [m for m in ("langchain_core", "langgraph") if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (
        f"spanhook demo --langchain needs {' and '.join(missing)}: "
        "pip install 'spanhook[langchain]'"
    )


def run_demo(
    question: str = DEFAULT_QUESTION,
    export: str | None = None,
    out: TextIO | None = None,
    langchain: bool = False,
) -> int:
    """Run the demo (``langchain``: as a LangGraph app traced by ``spanhook.langchain``);
    export over OTLP (or console) when asked by ``export`` or ``OTEL_*``."""
    import spanhook

    out = out or sys.stdout
    if langchain and (problem := langchain_missing()) is not None:
        print(problem, file=sys.stderr)
        return 2
    exporting = export not in (None, "none") or (export is None and export_requested())
    if exporting:
        spanhook.configure(
            service_name=os.environ.get("OTEL_SERVICE_NAME") or "spanhook-demo",
            exporters=None if export in (None, "auto") else export,
            capture_content=True,
        )
    before = spanhook.export_stats()  # the counters are process-wide: report this run's drops
    if langchain:
        from spanhook.langchain import demo as lc_demo

        answer, trace_id = lc_demo.run(question, out)
    else:
        tracer = _TraceId()
        answer = build_agent().run(question, callbacks=[tracer])
        trace_id = tracer.trace_id
    print(f"\nAnswer: {answer}", file=out)
    if exporting:
        ok = spanhook.force_flush(timeout=5.0)
        spanhook.shutdown(timeout=1.5)  # counts what is still held for a retry as dropped
        dropped = spanhook.export_stats().dropped_spans - before.dropped_spans
        if trace_id:
            print(f"Trace: {trace_link(trace_id)}", file=out)
        if not ok or dropped:
            print(
                f"warning: export incomplete ({dropped} span(s) dropped); is the collector up?",
                file=out,
            )
    return 0
