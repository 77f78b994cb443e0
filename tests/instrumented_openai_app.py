"""An app that instruments the openai SDK with OpenLLMetry and also calls it through
spanhook, for tests/test_openai_models.py. Runs in its own process because instrumenting
the SDK patches it process-wide (and uninstrumenting does not fully restore it).

Usage: ``python instrumented_openai_app.py <base_url>``; prints one JSON line: the finished
spans (name, span id, parent span id) of two phases, ``suppressed`` (the default) and
``kept`` (``suppress_provider_spans=False``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
from opentelemetry import trace
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhook.chat_models import ChatOpenAI


def rows(spans: tuple[ReadableSpan, ...]) -> list[dict[str, object]]:
    return [
        {
            "name": s.name,
            "id": s.context.span_id if s.context else None,
            "parent": s.parent.span_id if s.parent else None,
        }
        for s in spans
    ]


def instrumented() -> InMemorySpanExporter:
    """A global SDK provider exporting to memory, and the openai SDK instrumented."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument()
    return exporter


def run_app(app: Path, base_url: str) -> Any:
    """Run an instrumented app against ``base_url`` in its own process; its phases (the
    JSON of its last output line)."""
    out = subprocess.run(
        [sys.executable, str(app), base_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(base_url: str) -> None:
    exporter = instrumented()

    model = ChatOpenAI("test-model", base_url=base_url, api_key="sk-test", max_retries=0)
    model.invoke("whole")
    "".join(c.content for c in model.stream("streamed"))
    asyncio.run(model.ainvoke("async"))
    direct = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    direct.chat.completions.create(model="m", messages=[{"role": "user", "content": "direct"}])
    suppressed = rows(exporter.get_finished_spans())
    exporter.clear()

    ChatOpenAI(
        "test-model",
        base_url=base_url,
        api_key="sk-test",
        max_retries=0,
        suppress_provider_spans=False,
    ).invoke("kept")
    kept = rows(exporter.get_finished_spans())
    print(json.dumps({"suppressed": suppressed, "kept": kept}))


if __name__ == "__main__":
    main(sys.argv[1])
