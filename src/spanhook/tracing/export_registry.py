"""The process-wide side of span export: every live :class:`~spanhook.tracing.export.ExportProcessor`
(flushed and shut down together, at exit too), the summed counters behind
``spanhook.export_stats()``, and their fresh start in a forked child."""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spanhook.tracing.sampling import release_all_pending
from spanhook.tracing.shutdown import shutdown_together

if TYPE_CHECKING:
    from spanhook.tracing.export import ExportProcessor


@dataclass
class ExportStats:
    """Process-wide export counters, summed over every spanhook export processor."""

    exported_spans: int = 0
    dropped_spans: int = 0
    failed_exports: int = 0


#: The summed counters; replaced (not reset) in a forked child and by the test reset.
STATS = ExportStats()
_lock = threading.Lock()
_processors: weakref.WeakSet[ExportProcessor] = weakref.WeakSet()
_atexit_registered = False


def lock() -> threading.Lock:
    """The lock guarding :data:`STATS` and each processor's own counters."""
    return _lock


def export_stats() -> ExportStats:
    """A snapshot of the process-wide export counters."""
    with _lock:
        return ExportStats(STATS.exported_spans, STATS.dropped_spans, STATS.failed_exports)


def register(processor: ExportProcessor) -> None:
    """Count ``processor`` among the live ones (flushed, shut down and forked together)."""
    global _atexit_registered
    _processors.add(processor)
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(shutdown_all)


def _after_fork_in_child() -> None:
    """A forked child counts and exports its own spans. A lock another parent thread held at
    the fork would stay held forever in the child, so locks are replaced, not reused."""
    global _lock, STATS
    _lock = threading.Lock()
    STATS = ExportStats()
    for p in list(_processors):
        p._reinit_after_fork()


if hasattr(os, "register_at_fork"):  # one hook for every processor, not one each
    os.register_at_fork(after_in_child=_after_fork_in_child)


def shutdown_all(timeout: float = 1.5) -> None:
    """Shut every live export processor down, all within ``timeout`` seconds in total."""
    release_all_pending()
    shutdown_together(list(_processors), timeout)


def flush_all(timeout: float = 5.0) -> bool:
    """Flush every live export processor, within ``timeout`` seconds in total."""
    deadline = time.monotonic() + timeout
    release_all_pending()
    ok = True
    for p in list(_processors):
        ok = p.force_flush(int(max(0.0, deadline - time.monotonic()) * 1000)) and ok
    return ok


def _reset_for_tests() -> None:
    """Shut every live export processor down at once (no budget) and zero the counters."""
    global STATS
    for p in list(_processors):
        p.shutdown(timeout_millis=0)
    _processors.clear()
    with _lock:
        STATS = ExportStats()
