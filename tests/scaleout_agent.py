"""The calling app of the scale-out tests: one process that runs a batch of traces.

    python scaleout_agent.py TOOL_URL KIND [KIND ...]

Each KIND is one trace, run on a small thread pool: a spanhook ``agent_turn`` tool runs an
LLM chain (chain + LLM spans) and a ``call_tool_service`` tool that POSTs to the tool
service with ``spanhook.inject_headers``, so the trace continues in that process. Kinds:
``ok``; ``remote_error`` (the error is only in the tool service: the agent handles the 503
and its own spans stay OK); ``local_error`` (the agent's ``agent_turn`` fails after the
call); ``slow`` (the tool service sleeps, making the trace long).

Exports through spanhook's OTLP path (``OTEL_EXPORTER_OTLP_ENDPOINT``), flushes, and prints
one line ``TRACES <json>``: ``[{"trace_id", "kind", "spans": [span ids sent]}]``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

import spanhook
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.runtime.run import current_run
from spanhook.tools import Tool


def call_tool_service(url: str, kind: str, query: str) -> str:
    headers = spanhook.inject_headers({"Content-Type": "application/json"})
    data = json.dumps({"kind": kind, "query": query}).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:  # the tool service failed: answer without it
        return f"tool unavailable ({exc.code})"


def run_turn(url: str, index: int, kind: str) -> str:
    chain = LLMChain(
        llm=OfflineLLM(), prompt=PromptTemplate.from_template("Plan: {q}"), name="planner"
    )
    caller = Tool(
        name="call_tool_service",
        func=lambda query: call_tool_service(url, kind, query),
        description="calls the remote tool service",
    )
    trace_ids: list[str] = []

    def turn(question: str) -> str:
        run = current_run()
        assert run is not None
        trace_ids.append(run.trace_id)
        plan = chain.run(q=question)
        answer = caller.run(plan)
        if kind == "local_error":
            raise RuntimeError(f"agent turn {index} failed after {answer!r}")
        return answer

    agent = Tool(name="agent_turn", func=turn, description="one agent turn")
    with contextlib.suppress(RuntimeError):  # recorded on the span (status ERROR)
        agent.run(f"question {index}")
    return trace_ids[0]


def main(argv: list[str]) -> int:
    url, kinds = argv[0], argv[1:]
    recorder = InMemorySpanExporter()
    spanhook.configure(service_name="llm-agent", exporters=["otlp", recorder])
    with ThreadPoolExecutor(max_workers=4) as pool:
        trace_ids = list(pool.map(lambda ik: run_turn(url, *ik), enumerate(kinds)))
    spanhook.force_flush(timeout=10.0)
    spans: dict[str, list[str]] = {}
    for span in recorder.get_finished_spans():
        ctx = span.get_span_context()
        assert ctx is not None
        spans.setdefault(format_trace_id(ctx.trace_id), []).append(format_span_id(ctx.span_id))
    out = [
        {"trace_id": trace_id, "kind": kind, "spans": spans.get(trace_id, [])}
        for trace_id, kind in zip(trace_ids, kinds, strict=True)
    ]
    print(f"TRACES {json.dumps(out)}", flush=True)
    spanhook.shutdown(timeout=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
