"""How ExportProcessor retries a failed batch: in order, ahead of newer spans, while the
queue has room and within ``retry_timeout``; an exporter that raises is not retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spanhook.tracing.export import ExportProcessor


class FlakyExporter(SpanExporter):
    """Fails while ``down`` is set (like an OTLP exporter after its own retries)."""

    def __init__(self, raises: bool = False) -> None:
        self.down = threading.Event()
        self.down.set()
        self.raises = raises
        self.attempts = 0
        self.names: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.attempts += 1
        if self.down.is_set():
            if self.raises:
                raise RuntimeError("exporter bug")
            return SpanExportResult.FAILURE
        self.names += [s.name for s in spans]
        return SpanExportResult.SUCCESS


def _processor(exporter: SpanExporter, **kwargs: float) -> tuple[ExportProcessor, TracerProvider]:
    processor = ExportProcessor(exporter, schedule_delay=0.05, **kwargs)  # type: ignore[arg-type]
    tp = TracerProvider()
    tp.add_span_processor(processor)
    return processor, tp


def _wait(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_failed_batches_are_retried_in_order_once_the_exporter_recovers() -> None:
    exporter = FlakyExporter()
    processor, tp = _processor(exporter)
    tracer = tp.get_tracer("retry")
    for i in range(5):
        tracer.start_span(f"s{i}").end()
    _wait(lambda: exporter.attempts >= 2)
    for i in range(5, 8):
        tracer.start_span(f"s{i}").end()
    exporter.down.clear()
    assert processor.force_flush(timeout_millis=10_000) is True
    assert exporter.names == [f"s{i}" for i in range(8)]  # once each, oldest first
    assert processor.dropped_spans == 0 and processor.exported_spans == 8
    assert processor.failed_exports >= 2
    processor.shutdown()


def test_a_failed_batch_is_dropped_when_the_queue_has_no_room_for_it() -> None:
    exporter = FlakyExporter()
    processor, tp = _processor(exporter, max_queue_size=8, max_export_batch_size=4)
    tracer = tp.get_tracer("retry")
    for i in range(4):
        tracer.start_span(f"old{i}").end()
    _wait(lambda: exporter.attempts >= 1)
    for i in range(8):  # fills the queue while the first batch is retried
        tracer.start_span(f"new{i}").end()
    _wait(lambda: processor.dropped_spans >= 4)
    exporter.down.clear()
    processor.force_flush(timeout_millis=10_000)
    assert processor.dropped_spans + processor.exported_spans == 12
    assert processor.dropped_spans >= 4
    assert len(exporter.names) == len(set(exporter.names)) == processor.exported_spans
    processor.shutdown()


def test_retry_stops_after_retry_timeout_and_a_raising_exporter_is_not_retried() -> None:
    for exporter, kwargs in ((FlakyExporter(), {"retry_timeout": 0.5}), (FlakyExporter(True), {})):
        processor, tp = _processor(exporter, **kwargs)
        tp.get_tracer("retry").start_span("s").end()
        _wait(lambda p=processor: p.dropped_spans == 1)  # type: ignore[misc]
        assert processor.dropped_spans == 1 and processor.exported_spans == 0
        if exporter.raises:
            assert exporter.attempts == 1
        processor.shutdown()
