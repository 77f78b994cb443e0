"""``LangChainInstrumentor``: the OpenTelemetry instrumentor form of the set-up, in process
and through the real ``opentelemetry-instrument`` launcher (entry point)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook.langchain
from spanhook.langchain import LangChainInstrumentor

TESTS = Path(__file__).parent


def test_instrumentor_instruments_and_uninstruments(
    memory_exporter: InMemorySpanExporter,
) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument()
    try:
        assert spanhook.langchain.is_instrumented()
        RunnableLambda(lambda x: x + 1).invoke(1)
        assert [s.name for s in memory_exporter.get_finished_spans()] == ["RunnableLambda"]
    finally:
        instrumentor.uninstrument()
    assert not spanhook.langchain.is_instrumented()
    RunnableLambda(lambda x: x + 1).invoke(1)
    assert len(memory_exporter.get_finished_spans()) == 1


def test_opentelemetry_instrument_enables_it_through_the_entry_point(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            f"""
            import json, sys
            sys.path.insert(0, {str(TESTS)!r})
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
            import spanhook, spanhook.langchain
            from lc_app import ScriptedToolChatModel, build_chain

            exporter = InMemorySpanExporter()
            chain = build_chain(ScriptedToolChatModel())
            chain.invoke({{"topic": "x"}}, {{"callbacks": [exporter]}})
            spanhook.force_flush()
            print(json.dumps({{
                "instrumented": spanhook.langchain.is_instrumented(),
                "spans": sorted(s.name for s in exporter.get_finished_spans()),
            }}))
            """
        )
    )
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,langchain",
    }
    done = subprocess.run(
        [str(launcher), sys.executable, str(app)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["instrumented"] is True
    assert result["spans"] == sorted(
        [
            "RunnableSequence",
            "enrich",
            "ChatPromptTemplate",
            "chat scripted-fake-1",
            "StrOutputParser",
        ]
    )
