"""Background span export that never blocks the application and never loses spans silently.

``ExportProcessor`` replaces the SDK's ``BatchSpanProcessor`` on spanhook's paths (whose
2,048-span queue silently drops most of a 10k burst, whose ``force_flush()`` ignores its
timeout and whose ``shutdown()`` can hold exit for 30 s with the collector down). Here:

- ``on_end`` only appends to a large queue (65,536 spans); a full queue drops and *counts*;
- a worker thread exports batches; ``force_flush`` and ``shutdown`` are bounded, and what
  shutdown could not send is counted as dropped;
- a batch the exporter fails to send (collector down, overloaded, restarting) goes back to
  the head of the queue and is retried with backoff while the queue has room for it, for at
  most ``retry_timeout``; an exporter that *raises* is a bug, not an outage: dropped at once;
- ``exporter.export`` runs with instrumentation suppressed (the SDK's
  ``_SUPPRESS_INSTRUMENTATION_KEY``): an instrumented HTTP/gRPC client never traces export;
- after ``os.fork()`` the child starts with an empty queue (the parent sends its own spans),
  fresh locks, zeroed counters, its own worker and, via ``exporter_factory``, its own exporter;
- every drop is counted in ``dropped_spans`` and ``spanhook.export_stats()`` and logged
  (rate-limited).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from enum import Enum

from opentelemetry.context import (
    _SUPPRESS_INSTRUMENTATION_KEY,
    attach,
    detach,
    set_value,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spanhook.tracing import export_registry as registry

logger = logging.getLogger("spanhook.export")

#: Spans per export request. Encoding a batch to protobuf holds the GIL the application's
#: threads need: 512 spans (the SDK's default) added 1.3-4.7 ms to a traced call's p99 at
#: 3,000 spans/s, 64 spans added 0.08 ms (benchmarks/bench_export_latency.py).
DEFAULT_BATCH_SIZE = 64

#: First and longest pause between two attempts at a failed batch, in seconds. The OTLP
#: exporters already retry inside one ``export()`` call for up to their own ``timeout``, so
#: these pauses only space out those rounds.
RETRY_BACKOFF = (0.25, 2.0)


class _Outcome(Enum):
    SENT = "sent"
    FAILED = "failed"  # the exporter said FAILURE: retried
    RAISED = "raised"  # the exporter raised: dropped


class ExportProcessor(SpanProcessor):
    """Batches finished spans to ``exporter`` from a background thread."""

    reads_start_attributes = False  # (runtime.spans.start_span)

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 65_536,
        max_export_batch_size: int = DEFAULT_BATCH_SIZE,
        schedule_delay: float = 0.5,
        shutdown_timeout: float = 1.5,
        idle_timeout: float | None = None,
        retry_timeout: float = 30.0,
        exporter_factory: Callable[[], SpanExporter] | None = None,
    ) -> None:
        """``idle_timeout``: seconds after which an idle worker thread stops (it restarts
        with the next span), so that a processor nobody uses any more can be collected.
        ``retry_timeout``: how long a failed batch is retried before it is dropped (0: never
        retried). ``exporter_factory``: builds an exporter like ``exporter``; used after
        ``os.fork()`` to give the child its own connections."""
        if max_queue_size < 1 or max_export_batch_size < 1:
            raise ValueError("max_queue_size and max_export_batch_size must be >= 1")
        if schedule_delay <= 0 or shutdown_timeout < 0 or retry_timeout < 0:
            raise ValueError("schedule_delay must be > 0, shutdown_timeout and retry_timeout >= 0")
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = max_export_batch_size
        self.schedule_delay = schedule_delay
        self.shutdown_timeout = shutdown_timeout
        self.retry_timeout = retry_timeout
        self.idle_timeout = idle_timeout
        self._exporter_factory = exporter_factory
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._closing = False
        self._closed = False
        self._init_state()
        self._start_worker()
        registry.register(self)

    def _init_state(self) -> None:
        """Counters, lock and worker bookkeeping (at start and in a forked child)."""
        self.dropped_spans = 0
        self.exported_spans = 0
        self.failed_exports = 0
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._flush_requested = 0
        self._abandoned = False  # shutdown gave up on the batch in flight (counted as dropped)
        self._failing_since: float | None = None  # first failure of the batch at the head
        self._last_drop_log = 0.0
        self._pid = os.getpid()

    def _reinit_after_fork(self) -> None:
        if self._pid == os.getpid():
            return  # already done (the fork hook and the pid check in on_end both call this)
        self._queue.clear()  # the parent exports these
        self._init_state()
        if self._exporter_factory is not None:
            try:
                self.exporter = self._exporter_factory()
            except Exception:
                logger.exception("could not rebuild the exporter after fork(); keeping it")
        if not self._closed:
            self._start_worker()

    def _start_worker(self) -> None:
        self._worker_active = True
        self._worker = threading.Thread(
            target=self._run, name=f"spanhook-export-{type(self.exporter).__name__}", daemon=True
        )
        self._worker.start()

    def _ensure_worker(self) -> None:
        """Restart the worker if it stopped after being idle."""
        with self._cond:
            if not self._worker_active and not self._closed:
                self._worker.join()  # it is leaving: it holds no span
                self._start_worker()

    # -- SpanProcessor (``on_start``: the base class's, which does nothing) -------------
    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        if self._pid != os.getpid():  # forked without os.fork()'s hooks
            self._reinit_after_fork()
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

        ``False`` if that did not happen in time, if an export failed meanwhile (the batch
        stays queued for a retry: the flush does not wait for the collector to come back) or
        if spans were dropped: unlike the SDK's batch processor, a failed flush says so."""
        deadline = time.monotonic() + timeout_millis / 1000
        dropped_before = self.dropped_spans
        failed_before = self.failed_exports
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
                    if self.failed_exports != failed_before:
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
        backoff = 0.0
        while True:
            with self._cond:
                until = time.monotonic() + backoff  # a failed batch waits; shutdown cuts it short
                while not self._closing and (left := until - time.monotonic()) > 0:
                    self._cond.wait(left)
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
            outcome = _Outcome.RAISED
            try:
                outcome = self._export(batch)
            finally:
                with self._cond:
                    # Counted together with clearing ``_in_flight``, so that a flush or a
                    # shutdown waiting on it sees the final counts.
                    backoff = 0.0
                    if not self._abandoned:  # else shutdown counted the batch as dropped
                        backoff = self._settle(batch, outcome)
                    self._in_flight = 0
                    self._cond.notify_all()

    def _settle(self, batch: list[ReadableSpan], outcome: _Outcome) -> float:
        """Count or requeue a batch after an attempt (lock held); return the pause before
        the next attempt (0 when the batch is settled)."""
        if outcome is _Outcome.SENT:
            self._failing_since = None
            with registry.lock():
                self.exported_spans += len(batch)
                registry.STATS.exported_spans += len(batch)
            return 0.0
        with registry.lock():  # every failed attempt counts, retried or not
            self.failed_exports += 1
            registry.STATS.failed_exports += 1
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        failing_for = now - self._failing_since
        if (
            outcome is _Outcome.FAILED
            and not self._closing
            and failing_for < self.retry_timeout
            and len(self._queue) + len(batch) <= self.max_queue_size
        ):
            self._queue.extendleft(reversed(batch))  # same order, ahead of newer spans
            low, high = RETRY_BACKOFF
            return min(high, max(low, failing_for))
        self._failing_since = None
        self._drop(len(batch), f"{type(self.exporter).__name__} failed to export them")
        return 0.0

    def _export(self, batch: Sequence[ReadableSpan]) -> _Outcome:
        # An instrumented HTTP/gRPC client inside the exporter must not trace this call.
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            ok = self.exporter.export(batch) == SpanExportResult.SUCCESS
            return _Outcome.SENT if ok else _Outcome.FAILED
        except Exception as e:
            logger.warning("span export raised %r", e)
            return _Outcome.RAISED
        finally:
            detach(token)

    def _drop(self, n: int, why: str, force_log: bool = False) -> None:
        with registry.lock():
            self.dropped_spans += n
            registry.STATS.dropped_spans += n
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
