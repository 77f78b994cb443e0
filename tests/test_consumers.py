"""OTel consumers passed in ``callbacks=[...]``: exporters get one background processor each,
which lets go of its thread when idle, so an exporter per request leaks nothing."""

from __future__ import annotations

import gc
import threading
import time

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from app import build
from spanhook._state import STATE
from spanhook.tracing import consumers


def export_threads() -> int:
    return sum(
        1
        for t in threading.enumerate()
        if t.name.startswith("spanhook-export-InMemorySpanExporter")
    )


def test_an_exporter_per_request_leaks_no_thread_and_loses_no_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumers, "CALLBACK_EXPORTER_IDLE_TIMEOUT", 0.2)
    outer, *_ = build()
    before = export_threads()
    exporters = [InMemorySpanExporter() for _ in range(20)]
    for exporter in exporters:
        outer.invoke({"q": "hi"}, callbacks=[exporter])
    assert export_threads() - before <= 20
    assert spanhook.force_flush(timeout=5)
    assert all(len(e.get_finished_spans()) == 4 for e in exporters)
    deadline = time.monotonic() + 10
    while export_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert export_threads() == before
    del exporters, exporter
    gc.collect()
    assert len(STATE.exporter_processors) == 0


def test_the_same_exporter_reuses_its_processor_and_restarts_its_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumers, "CALLBACK_EXPORTER_IDLE_TIMEOUT", 0.1)
    exporter = InMemorySpanExporter()
    outer, *_ = build()
    outer.invoke({"q": "one"}, callbacks=[exporter])
    first = consumers.processor_for_exporter(exporter)
    assert first.force_flush(5000)
    deadline = time.monotonic() + 10
    while first._worker_active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not first._worker_active  # idle: its thread stopped
    outer.invoke({"q": "two"}, callbacks=[exporter])  # a span wakes a new worker
    assert consumers.processor_for_exporter(exporter) is first
    assert first.force_flush(5000)
    assert len(exporter.get_finished_spans()) == 8
    first.shutdown()
