"""A run attaches and detaches its OTel context through the default runtime context's
contextvar: the same tokens and the same current context as OTel's own functions, and a run
closed where its context cannot be restored still ends its span (OTel logs the detach)."""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhook.chains import Chain
from spanhook.runtime import spans
from spanhook.runtime.run import current_run
from spanhook.runtime.scope import Request
from spanhook.runtime.start import start_run


class Echo(Chain):
    input_keys = ["x"]
    output_keys = ["y"]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        run = current_run()
        assert run is not None and trace.get_current_span() is run.span
        return {"y": inputs["x"]}


def test_spans_helpers_are_otel_context_functions_equivalents() -> None:
    ctx = otel_context.set_value("k", 1)
    token = spans.attach(ctx)
    try:
        assert otel_context.get_current() is ctx
        assert spans.get_current() is ctx
    finally:
        otel_context.detach(token)  # a token of spans.attach is an OTel token
    assert otel_context.get_value("k") is None
    token = otel_context.attach(ctx)
    spans.reset(token)
    assert otel_context.get_value("k") is None


def test_run_is_current_in_body_and_context_restored_after(
    memory_exporter: InMemorySpanExporter,
) -> None:
    before = otel_context.get_current()
    assert Echo().invoke({"x": 1}) == {"x": 1, "y": 1}
    assert otel_context.get_current() is before
    assert [s.name for s in memory_exporter.get_finished_spans()] == ["Echo"]


def test_run_closed_in_another_context_ends_its_span_and_logs(
    memory_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    run = start_run(
        "chain", Echo(), Request(), name="Echo", span_name="Echo", start_args=({}, {"x": 1})
    )
    entered, other = contextvars.copy_context(), contextvars.copy_context()
    entered.run(run.__enter__)
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        other.run(run.__exit__, None, None, None)  # the token belongs to `entered`
    assert "Failed to detach context" in caplog.text
    assert [s.name for s in memory_exporter.get_finished_spans()] == ["Echo"]
    assert current_run() is None
