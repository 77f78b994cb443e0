"""Background span export that never blocks the application and never loses spans silently.

``ExportProcessor`` replaces the SDK's ``BatchSpanProcessor`` on spanhook's paths because
of three measured problems with it (see the project's issue notes): a 2,048-span queue that
silently drops most of a 10k burst, a ``force_flush()`` that exports in the caller's thread
and ignores its timeout, and a ``shutdown()`` that can hold process exit for 30 s when the
collector is down. Here:

- ``on_end`` only appends to a queue (no lock held for long, no I/O); the queue is large
  (65,536 spans by default) and, when it is full, the new span is dropped and *counted*;
- a worker thread exports batches; ``force_flush(timeout)`` waits for the worker, bounded;
- ``shutdown(timeout)`` is bounded (1.5 s by default): what could not be sent by then is
  counted as dropped and reported;
- every drop (queue full, export failure, shutdown) is counted in ``dropped_spans``, added
  to the process-wide counter ``spanhook.export_stats()`` and logged (rate-limited).
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spanhook.tracing.sampling import release_all_pending

logger = logging.getLogger("spanhook.export")

_stats_lock = threading.Lock()


@dataclass
class ExportStats:
    """Process-wide export counters, summed over every spanhook export processor."""

    exported_spans: int = 0
    dropped_spans: int = 0
    failed_exports: int = 0


_stats = ExportStats()
_processors: weakref.WeakSet[ExportProcessor] = weakref.WeakSet()


def export_stats() -> ExportStats:
    """A snapshot of the process-wide export counters."""
    with _stats_lock:
        return ExportStats(_stats.exported_spans, _stats.dropped_spans, _stats.failed_exports)


class ExportProcessor(SpanProcessor):
    """Batches finished spans to ``exporter`` from a background thread."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 65_536,
        max_export_batch_size: int = 512,
        schedule_delay: float = 0.5,
        shutdown_timeout: float = 1.5,
        idle_timeout: float | None = None,
    ) -> None:
        """``idle_timeout``: seconds after which an idle worker thread stops (it restarts
        with the next span), so that a processor nobody uses any more can be collected."""
        if max_queue_size < 1 or max_export_batch_size < 1:
            raise ValueError("max_queue_size and max_export_batch_size must be >= 1")
        if schedule_delay <= 0 or shutdown_timeout < 0:
            raise ValueError("schedule_delay must be > 0 and shutdown_timeout >= 0")
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = max_export_batch_size
        self.schedule_delay = schedule_delay
        self.shutdown_timeout = shutdown_timeout
        self.dropped_spans = 0
        self.exported_spans = 0
        self.failed_exports = 0
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._flush_requested = 0
        self._closing = False
        self._closed = False
        self._abandoned = False  # shutdown gave up on the batch in flight (counted as dropped)
        self._last_drop_log = 0.0
        self.idle_timeout = idle_timeout
        self._worker_active = True
        self._worker = self._start_worker()
        _processors.add(self)
        _register_atexit()

    def _start_worker(self) -> threading.Thread:
        worker = threading.Thread(
            target=self._run, name=f"spanhook-export-{type(self.exporter).__name__}", daemon=True
        )
        worker.start()
        return worker

    def _ensure_worker(self) -> None:
        """Restart the worker if it stopped after being idle."""
        with self._cond:
            if not self._worker_active and not self._closed:
                self._worker.join()  # it is leaving: it holds no span
                self._worker_active = True
                self._worker = self._start_worker()

    # -- SpanProcessor ---------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        if self._closed:
            self._drop(1, "the processor is shut down")
            return
        q = self._queue
        if len(q) >= self.max_queue_size:
            self._drop(1, f"the export queue is full ({self.max_queue_size} spans)")
            return
        q.append(span)
        if not self._worker_active:
            self._ensure_worker()
        if len(q) >= self.max_export_batch_size:
            with self._cond:
                self._cond.notify()

    def force_flush(self, timeout_millis: int = 5_000) -> bool:
        """Wait (at most ``timeout_millis``) until every queued span went through the exporter.

        ``False`` if that did not happen in time or if spans were dropped meanwhile (export
        failed, queue full): unlike the SDK's batch processor, a failed flush says so."""
        deadline = time.monotonic() + timeout_millis / 1000
        dropped_before = self.dropped_spans
        if self._queue:
            self._ensure_worker()
        with self._cond:
            self._flush_requested += 1
            self._cond.notify_all()
            try:
                while self._queue or self._in_flight:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._worker.is_alive():
                        return False
                    self._cond.wait(min(left, 0.05))
            finally:
                self._flush_requested -= 1
        return self.dropped_spans == dropped_before

    def shutdown(self, timeout_millis: int | None = None) -> None:
        """Send what can be sent within the timeout, count the rest as dropped, stop."""
        if self._closed:
            return
        timeout = self.shutdown_timeout if timeout_millis is None else timeout_millis / 1000
        deadline = time.monotonic() + timeout
        # Keep part of the budget to interrupt an exporter stuck on a down collector, so the
        # whole shutdown stays within ``timeout``.
        grace = min(0.25, timeout / 4)
        if self._queue:
            self._ensure_worker()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._worker.join(max(0.0, timeout - grace))
        self._closed = True
        try:
            # Interrupts retry sleeps and (gRPC) the call in flight.
            self.exporter.shutdown()
        except Exception:  # pragma: no cover - exporter bug
            logger.exception("exporter shutdown failed")
        if self._worker.is_alive():
            self._worker.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
            if self._worker.is_alive() and self._in_flight:
                # The exporter did not give up in time: its batch is lost as far as we know.
                left += self._in_flight
                self._in_flight = 0
                self._abandoned = True
            self._cond.notify_all()
        if left:
            self._drop(left, "shutdown timed out before they were exported", force_log=True)

    # -- worker --------------------------------------------------------------------------
    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._cond:
                q = self._queue
                if not self._closing and (
                    not q or (not self._flush_requested and len(q) < self.max_export_batch_size)
                ):
                    self._cond.wait(self.schedule_delay)
                if not self._queue:
                    if self._closing:
                        return
                    self._cond.notify_all()
                    if (
                        self.idle_timeout is not None
                        and time.monotonic() - idle_since > self.idle_timeout
                    ):
                        # Say so first, then look again: a span appended meanwhile either
                        # sees the flag (and on_end restarts a worker) or is seen here.
                        self._worker_active = False
                        if not self._queue:
                            return
                        self._worker_active = True
                    continue
                idle_since = time.monotonic()
                n = min(len(self._queue), self.max_export_batch_size)
                batch = [self._queue.popleft() for _ in range(n)]
                self._in_flight = n
            ok = False
            try:
                ok = self._export(batch)
            finally:
                with self._cond:
                    # Counted together with clearing ``_in_flight``, so that a flush or a
                    # shutdown waiting on it sees the final counts.
                    if not self._abandoned:  # else shutdown counted the batch as dropped
                        self._account(len(batch), ok)
                    self._in_flight = 0
                    self._cond.notify_all()

    def _export(self, batch: Sequence[ReadableSpan]) -> bool:
        try:
            return self.exporter.export(batch) == SpanExportResult.SUCCESS
        except Exception as e:
            logger.warning("span export raised %r", e)
            return False

    def _account(self, n: int, ok: bool) -> None:
        if ok:
            with _stats_lock:
                self.exported_spans += n
                _stats.exported_spans += n
        else:
            with _stats_lock:
                self.failed_exports += 1
                _stats.failed_exports += 1
            self._drop(n, f"{type(self.exporter).__name__} failed to export them")

    def _drop(self, n: int, why: str, force_log: bool = False) -> None:
        with _stats_lock:
            self.dropped_spans += n
            _stats.dropped_spans += n
        now = time.monotonic()
        if force_log or now - self._last_drop_log > 10:
            self._last_drop_log = now
            logger.warning(
                "dropped %d span(s): %s (%d dropped by this processor so far; "
                "see spanhook.export_stats())",
                n,
                why,
                self.dropped_spans,
            )


_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(shutdown_all)


def shutdown_all(timeout: float = 1.5) -> None:
    """Shut every live export processor down, all within ``timeout`` seconds in total."""
    release_all_pending()
    shutdown_together(list(_processors), timeout)


def shutdown_together(processors: Sequence[SpanProcessor], timeout: float) -> None:
    """Shut ``processors`` down side by side, each with the whole ``timeout``, and return
    within about ``timeout`` seconds: several exporters to a down collector cost one budget,
    not one each."""

    def stop(p: SpanProcessor) -> None:
        try:
            if isinstance(p, ExportProcessor):
                p.shutdown(timeout_millis=int(timeout * 1000))
            else:
                p.shutdown()
        except Exception:
            logger.exception("span processor %r failed to shut down", p)

    if len(processors) == 1:
        stop(processors[0])
        return
    deadline = time.monotonic() + timeout
    threads = [
        threading.Thread(target=stop, args=(p,), name="spanhook-shutdown", daemon=True)
        for p in processors
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 0.1)


def flush_all(timeout: float = 5.0) -> bool:
    """Flush every live export processor, within ``timeout`` seconds in total."""
    deadline = time.monotonic() + timeout
    release_all_pending()
    ok = True
    for p in list(_processors):
        ok = p.force_flush(int(max(0.0, deadline - time.monotonic()) * 1000)) and ok
    return ok
