"""Per-trace sampling that always keeps errors, decided when the trace is complete.

A head sampler decides when a trace starts, before anyone knows whether it will fail, so
sampling 10% of traffic loses 90% of the failures too. :class:`KeepErrorsSampler` holds the
spans of each trace in memory until the trace's local root span ends, then exports the
whole trace if it has an error, or if its trace id falls in the kept share (the same rule as
OTel's ``TraceIdRatioBased``, so processes sampling at the same ratio agree on a trace);
otherwise it drops the trace whole. It never exports part of a trace it dropped, except a
span that fails after its trace was dropped: an error is always exported.

Memory is bounded: at most ``max_traces`` traces are held; past that the oldest is decided
with what it has. ``force_flush()`` and ``shutdown()`` decide every held trace first.

The decision is **per process**. A trace that crosses processes (``continue_trace`` or an
incoming ``traceparent``) is decided separately in each one: the process where the error
happened keeps its part, the others may drop theirs, so the trace arrives cut. A warning is
logged once when a trace with a remote parent reaches this processor. For such traces,
export everything and let a Collector tail-sampling tier decide on whole traces (routed by
trace id; ``docker compose --profile scale-out``). Use this processor for single-process
apps, or where a cut trace is acceptable.

Put it on a provider whose sampler records every span (the SDK's default does), e.g. with
``spanhook.configure(keep_ratio=0.1)``, or around your own processor::

    provider.add_span_processor(KeepErrorsSampler(BatchSpanProcessor(exporter), ratio=0.1))
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

from spanhook.tracing.shutdown import shutdown_together

logger = logging.getLogger("spanhook.tracing")

_TRACE_ID_LOW = (1 << 64) - 1


def kept_by_ratio(trace_id: int, ratio: float) -> bool:
    """The ``TraceIdRatioBased`` rule: the trace id's low 64 bits below ``ratio`` of 2**64."""
    return (trace_id & _TRACE_ID_LOW) < round(ratio * (1 << 64))


def check_ratio(ratio: object, what: str) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{what} must be between 0 and 1, got {ratio!r}")


@dataclass(frozen=True)
class SamplingStats:
    kept_traces: int
    dropped_traces: int
    #: Spans of failed spans exported although their trace had been dropped earlier.
    late_errors: int
    #: Traces held, waiting for their root span to end.
    pending_traces: int


class KeepErrorsSampler(SpanProcessor):
    """Forwards whole traces to ``processors``: every trace with an ERROR span, and
    ``ratio`` of the others (0 keeps errors only, 1 keeps everything)."""

    reads_start_attributes = False  # (runtime.spans.start_span)

    def __init__(
        self,
        processors: SpanProcessor | Sequence[SpanProcessor],
        ratio: float,
        *,
        max_traces: int = 4096,
        max_spans_per_trace: int = 4096,
        remember: int = 65_536,
    ) -> None:
        check_ratio(ratio, "KeepErrorsSampler ratio")
        targets = (processors,) if isinstance(processors, SpanProcessor) else tuple(processors)
        for i, p in enumerate(targets):
            if not isinstance(p, SpanProcessor):
                raise TypeError(
                    f"KeepErrorsSampler processors[{i}] is {p!r}: expected a SpanProcessor"
                )
        for name, value in (
            ("max_traces", max_traces),
            ("max_spans_per_trace", max_spans_per_trace),
            ("remember", remember),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"KeepErrorsSampler {name} must be a positive int, got {value!r}")
        self.ratio = float(ratio)
        self._targets = targets
        self._max_traces = max_traces
        self._max_spans = max_spans_per_trace
        self._remember = remember
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._decided: OrderedDict[int, bool] = OrderedDict()
        self._kept = self._dropped = self._late_errors = 0
        _live.add(self)

    # -- SpanProcessor (``on_start``: the base class's, which does nothing: nothing is
    # forwarded before its trace is decided) -----------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None:
            return
        trace_id = ctx.trace_id
        failed = span.status.status_code is StatusCode.ERROR
        forward: list[ReadableSpan] = []
        with self._lock:
            decided = self._decided.get(trace_id)
            if decided is not None:
                if decided:
                    forward = [span]
                elif failed:
                    self._late_errors += 1
                    forward = [span]
            else:
                held = self._pending.get(trace_id)
                if held is None:
                    held = self._pending[trace_id] = []
                held.append(span)
                parent = span.parent
                if parent is not None and parent.is_remote:
                    _warn_remote_parent_once()
                if parent is None or parent.is_remote or len(held) >= self._max_spans:
                    forward = self._decide(trace_id)
                elif len(self._pending) > self._max_traces:
                    forward = self._decide(next(iter(self._pending)))
        self._forward(forward)

    def release_pending(self) -> None:
        """Decide every held trace now (with the spans it has) and forward the kept ones."""
        self._forward(self._decide_all())

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.release_pending()
        results = [p.force_flush(timeout_millis) for p in self._targets]
        return all(results)

    def shutdown(self) -> None:
        self.release_pending()
        budget = max(
            (float(getattr(p, "shutdown_timeout", 1.5)) for p in self._targets), default=1.5
        )
        shutdown_together(self._targets, budget)

    # -- decisions -------------------------------------------------------------------------
    def stats(self) -> SamplingStats:
        with self._lock:
            return SamplingStats(self._kept, self._dropped, self._late_errors, len(self._pending))

    def _decide(self, trace_id: int) -> list[ReadableSpan]:
        """Decide a held trace (lock held); return its spans if kept."""
        spans = self._pending.pop(trace_id)
        keep = kept_by_ratio(trace_id, self.ratio) or any(
            s.status.status_code is StatusCode.ERROR for s in spans
        )
        self._decided[trace_id] = keep
        if len(self._decided) > self._remember:
            self._decided.popitem(last=False)
        if keep:
            self._kept += 1
            return spans
        self._dropped += 1
        return []

    def _decide_all(self) -> list[ReadableSpan]:
        out: list[ReadableSpan] = []
        with self._lock:
            while self._pending:
                out += self._decide(next(iter(self._pending)))
        return out

    def _forward(self, spans: list[ReadableSpan]) -> None:
        for span in spans:
            for p in self._targets:
                try:
                    p.on_end(span)
                except Exception:
                    logger.exception("span processor %r failed in on_end", p)


_live: weakref.WeakSet[KeepErrorsSampler] = weakref.WeakSet()
_warned_remote = False


def _warn_remote_parent_once() -> None:
    global _warned_remote
    if not _warned_remote:
        _warned_remote = True
        logger.warning(
            "keep_ratio / KeepErrorsSampler decides per process, but this trace continues one "
            "started in another process: each process decides its own part, so kept traces "
            "can arrive cut. For traces that cross processes, export everything and sample "
            "in a Collector tail-sampling tier (docker compose --profile scale-out)."
        )


def release_all_pending() -> None:
    """Decide the held traces of every live sampler (before a flush or shutdown of the
    export processors behind them, and at exit)."""
    for sampler in list(_live):
        sampler.release_pending()


def _after_fork_in_child() -> None:
    """Held traces belong to the parent (it decides and exports them); a forked child starts
    with none, and with fresh locks (one held by another thread at the fork stays held)."""
    for sampler in list(_live):
        sampler._lock = threading.Lock()
        sampler._pending.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _reset_for_tests() -> None:
    """Forget the live samplers and let the remote-parent warning be logged again."""
    global _warned_remote
    _live.clear()
    _warned_remote = False
