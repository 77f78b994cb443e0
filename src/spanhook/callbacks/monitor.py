"""``MonitorCallbackHandler``: wall time, memory and token usage per run, aggregated per
run kind and name.

Per run (keyed by ``run_id``, so concurrent runs in threads and asyncio tasks never mix):
wall time; with ``trace_memory=True`` the peak and net Python allocation (``tracemalloc``)
during the run; the process RSS at start and end (``/proc/self/statm`` where available,
else the peak RSS from ``getrusage``); token usage from ``on_llm_end`` (streamed calls
included: their usage arrives in the final result).

Memory figures are process-wide while the run is active: with concurrent runs they include
the other runs' allocations. Peak allocation is exact for that window: at every run start
and end the handler reads ``tracemalloc``'s peak, resets it, and credits it to every run
active during the interval. This uses ``tracemalloc.reset_peak()``, so do not rely on
``tracemalloc``'s own peak elsewhere while a memory-tracing monitor is active.
``tracemalloc`` slows allocation-heavy code noticeably; it is off by default.
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from uuid import UUID

from spanhook.callbacks.metrics import GenAIMetrics
from spanhook.callbacks.tracker import RunInfo, RunTracker
from spanhook.callbacks.usage import usage_from_result

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"
_HAS_STATM = os.path.exists(_STATM)


def process_rss_bytes() -> int:
    """Current resident set size (Linux ``/proc``), else the peak RSS so far."""
    if _HAS_STATM:
        try:
            fd = os.open(_STATM, os.O_RDONLY)
            try:
                fields = os.read(fd, 128).split()
            finally:
                os.close(fd)
            return int(fields[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            pass
    try:
        import resource
    except ImportError:  # no getrusage on this platform
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class RunRecord:
    """One finished run."""

    run_id: UUID
    parent_run_id: UUID | None
    kind: str
    name: str
    ok: bool
    duration_s: float
    error_type: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: Highest traced Python allocation above the run's start level (``trace_memory``).
    peak_alloc_bytes: int | None = None
    #: Traced allocation at end minus at start (``trace_memory``).
    net_alloc_bytes: int | None = None
    rss_start_bytes: int | None = None
    rss_end_bytes: int | None = None


@dataclass
class RunStats:
    """Aggregate of every finished run of one kind and name."""

    kind: str
    name: str
    count: int = 0
    errors: int = 0
    total_duration_s: float = 0.0
    max_duration_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    max_peak_alloc_bytes: int | None = None
    total_net_alloc_bytes: int | None = None
    max_rss_bytes: int | None = None
    error_types: dict[str, int] = field(default_factory=dict)

    @property
    def mean_duration_s(self) -> float:
        return self.total_duration_s / self.count if self.count else 0.0

    def _add(self, r: RunRecord) -> None:
        self.count += 1
        self.total_duration_s += r.duration_s
        self.max_duration_s = max(self.max_duration_s, r.duration_s)
        if not r.ok:
            self.errors += 1
            key = r.error_type or "?"
            self.error_types[key] = self.error_types.get(key, 0) + 1
        self.prompt_tokens += r.prompt_tokens
        self.completion_tokens += r.completion_tokens
        self.total_tokens += r.total_tokens
        if r.peak_alloc_bytes is not None:
            self.max_peak_alloc_bytes = max(self.max_peak_alloc_bytes or 0, r.peak_alloc_bytes)
        if r.net_alloc_bytes is not None:
            self.total_net_alloc_bytes = (self.total_net_alloc_bytes or 0) + r.net_alloc_bytes
        if r.rss_end_bytes is not None:
            self.max_rss_bytes = max(
                self.max_rss_bytes or 0, r.rss_end_bytes, r.rss_start_bytes or 0
            )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean_duration_s"] = self.mean_duration_s
        return out


@dataclass
class MonitorReport:
    """A snapshot of a monitor: per kind/name aggregates, in the order they first started."""

    stats: list[RunStats]
    active_runs: int
    finished_runs: int
    trace_memory: bool

    def get(self, kind: str, name: str) -> RunStats | None:
        return next((s for s in self.stats if s.kind == kind and s.name == name), None)

    def by_kind(self, kind: str) -> list[RunStats]:
        return [s for s in self.stats if s.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "active_runs": self.active_runs,
            "finished_runs": self.finished_runs,
            "trace_memory": self.trace_memory,
            "stats": [s.to_dict() for s in self.stats],
        }


@dataclass
class _Measures:
    """What the monitor measures of one active run (its ``RunInfo.state``)."""

    rss_start: int | None
    mem_base: int = 0
    mem_peak: int = 0
    metrics: dict[str, Any] | None = None


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f}"


class MonitorCallbackHandler(RunTracker):
    """Measures every run in its scope; thread-safe and asyncio-safe.

    Args:
        trace_memory: measure Python allocations with ``tracemalloc`` (started if it is not
            tracing yet, and stopped again by :meth:`close`).
        track_rss: sample the process RSS at each run's start and end.
        metrics: also record every finished run as OTel metrics (:class:`GenAIMetrics`).
        max_records: how many finished :class:`RunRecord` objects :meth:`records` keeps.
    """

    run_inline = True  # a few clock and counter updates: never worth a thread hop

    def __init__(
        self,
        *,
        trace_memory: bool = False,
        track_rss: bool = True,
        max_records: int = 1000,
        metrics: GenAIMetrics | None = None,
    ) -> None:
        if not isinstance(max_records, int) or max_records < 0:
            raise ValueError(f"max_records must be an int >= 0, got {max_records!r}")
        self.trace_memory = bool(trace_memory)
        self.track_rss = bool(track_rss)
        self.metrics = metrics
        super().__init__()
        self._stats: dict[tuple[str, str], RunStats] = {}
        self._order: dict[tuple[str, str], int] = {}  # kind/name -> first start
        self._records: deque[RunRecord] = deque(maxlen=max_records)
        self._finished = 0
        self._started_tracemalloc = False
        if self.trace_memory and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tracemalloc = True

    def close(self) -> None:
        """Stop ``tracemalloc`` if this monitor started it."""
        if self._started_tracemalloc:
            self._started_tracemalloc = False
            tracemalloc.stop()

    # -- memory bookkeeping (under the lock) -------------------------------------------
    def _interval(self, ending: _Measures | None = None) -> int:
        """Credit the peak since the last event to every active run (and ``ending``); the
        current level."""
        if not tracemalloc.is_tracing():
            return 0
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        measures = [r.state for r in self._runs.values() if r.state is not None]
        for m in [*measures, ending] if ending is not None else measures:
            if peak > m.mem_peak:
                m.mem_peak = peak
        return current

    # -- the run's life ------------------------------------------------------------------
    def run_started(self, run: RunInfo) -> None:
        measures = _Measures(process_rss_bytes() if self.track_rss else None)
        if self.metrics is not None:
            serialized = run.serialized if isinstance(run.serialized, dict) else {}
            start = {
                "run_id": run.run_id,
                "invocation_params": serialized.get("kwargs"),
                "serialized": serialized,
            }
            measures.metrics = self.metrics.started(run.kind, run.name, start)
        with self._lock:
            if self.trace_memory:
                measures.mem_base = measures.mem_peak = self._interval()
            run.state = measures
            self._order.setdefault((run.kind, run.name), len(self._order))
        run.start_ns = time.perf_counter_ns()

    def run_ended(self, run: RunInfo, output: Any, kwargs: dict[str, Any]) -> None:
        usage = usage_from_result(output) if run.kind in ("llm", "chat_model") else None
        self._finish(run, None, asdict(usage) if usage is not None else {})

    def run_failed(self, run: RunInfo, error: BaseException, kwargs: dict[str, Any]) -> None:
        self._finish(run, error, {})

    def _finish(self, run: RunInfo, error: BaseException | None, tokens: dict[str, int]) -> None:
        """Record the run; ``tokens``: its token counts (``RunRecord`` fields)."""
        rss = process_rss_bytes() if self.track_rss else None
        m: _Measures | None = run.state
        if m is None or run.start_ns is None or run.end_ns is None:
            return  # its start was not seen
        with self._lock:
            current = self._interval(m) if self.trace_memory else 0
            record = RunRecord(
                run_id=run.run_id,
                parent_run_id=run.parent_run_id,
                kind=run.kind,
                name=run.name,
                ok=error is None,
                duration_s=(run.end_ns - run.start_ns) / 1e9,
                error_type=type(error).__qualname__ if error is not None else None,
                rss_start_bytes=m.rss_start,
                rss_end_bytes=rss,
                **tokens,
            )
            if self.trace_memory:
                record.peak_alloc_bytes = max(0, m.mem_peak - m.mem_base)
                record.net_alloc_bytes = current - m.mem_base
            key = (run.kind, run.name)
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = RunStats(run.kind, run.name)
            stats._add(record)
            self._records.append(record)
            self._finished += 1
        if self.metrics is not None:
            self.metrics.finished(record, m.metrics)

    # -- results -------------------------------------------------------------------------
    def records(self) -> list[RunRecord]:
        """The most recent finished runs (up to ``max_records``), oldest first."""
        with self._lock:
            return list(self._records)

    def report(self) -> MonitorReport:
        with self._lock:
            keys = sorted(self._stats, key=lambda k: self._order.get(k, len(self._order)))
            ordered = (self._stats[k] for k in keys)
            stats = [replace(s, error_types=dict(s.error_types)) for s in ordered]
            return MonitorReport(stats, len(self._runs), self._finished, self.trace_memory)

    def reset(self) -> None:
        """Forget the finished runs (runs still active are kept)."""
        with self._lock:
            self._stats.clear()
            self._order = {
                k: i for i, k in enumerate({(a.kind, a.name) for a in self._runs.values()})
            }
            self._records.clear()
            self._finished = 0

    def summary(self) -> str:
        """The report as a text table, one row per run kind and name."""
        report = self.report()
        header = ["kind", "name", "count", "errors", "mean ms", "max ms", "total ms", "tokens"]
        if self.trace_memory:
            header += ["peak KiB", "net KiB"]
        if self.track_rss:
            header += ["max RSS MiB"]
        rows = [header]
        for s in report.stats:
            row = [
                s.kind,
                s.name,
                str(s.count),
                str(s.errors),
                f"{s.mean_duration_s * 1e3:.2f}",
                f"{s.max_duration_s * 1e3:.2f}",
                f"{s.total_duration_s * 1e3:.2f}",
                str(s.total_tokens),
            ]
            if self.trace_memory:
                row += [_kib(s.max_peak_alloc_bytes), _kib(s.total_net_alloc_bytes)]
            if self.track_rss:
                row += ["-" if s.max_rss_bytes is None else f"{s.max_rss_bytes / 2**20:.1f}"]
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = []
        for i, r in enumerate(rows):
            cells = [
                c.ljust(w) if j < 2 else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        if report.active_runs:
            lines.append(f"({report.active_runs} run(s) still active)")
        return "\n".join(lines)


MonitorHandler = MonitorCallbackHandler

__all__ = [
    "MonitorCallbackHandler",
    "MonitorHandler",
    "MonitorReport",
    "RunRecord",
    "RunStats",
    "process_rss_bytes",
]
