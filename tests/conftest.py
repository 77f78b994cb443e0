"""Test fixtures: every test starts with no global TracerProvider and default settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhook.testing import reset


@pytest.fixture(autouse=True)
def _clean_otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in (
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "NO_COLOR",
        "FORCE_COLOR",
    ):
        monkeypatch.delenv(var, raising=False)
    reset()
    yield
    reset()


@pytest.fixture
def memory_exporter() -> InMemorySpanExporter:
    """An application-configured global SDK provider exporting to memory, synchronously."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tp)
    return exporter
