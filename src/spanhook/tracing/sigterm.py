"""Flush queued spans when the process gets SIGTERM, then act as if spanhook were not there.

Containers, gunicorn/celery masters and process managers stop a process with SIGTERM, whose
default action ends it at once: the spans still queued for export would be lost. With the
handler installed by ``spanhook.configure()``, SIGTERM first flushes every export processor
(bounded by the shutdown budget), then runs the handler that was there before (the
application's own one), or, if there was none, restores the default action and re-sends the
signal, so the process ends exactly as it would have. A handler the application installs
*after* ``configure()`` replaces spanhook's (the exit-time shutdown still flushes if the
process then exits normally).

Turn it off with ``configure(flush_on_sigterm=False)`` or ``SPANHOOK_FLUSH_ON_SIGTERM=false``
for servers that manage their signals themselves. Only the main thread can install signal
handlers; ``configure()`` called from another thread leaves SIGTERM alone.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from spanhook.tracing.settings import env_flag

logger = logging.getLogger("spanhook.export")

FLUSH_ON_SIGTERM_ENV = "SPANHOOK_FLUSH_ON_SIGTERM"

_previous: Any = None
_flush: Callable[[float], object] | None = None
_budget = 2.0


def enabled(flag: bool | None) -> bool:
    """The configure argument if given, else ``SPANHOOK_FLUSH_ON_SIGTERM`` (default on)."""
    if flag is not None:
        return bool(flag)
    return env_flag(FLUSH_ON_SIGTERM_ENV, default=True)


def install(flush: Callable[[float], object], budget: float) -> bool:
    """Flush with ``flush(budget)`` on SIGTERM before the previous handler runs.
    ``False`` when not called from the main thread (signal handlers cannot be set there)."""
    global _previous, _flush, _budget
    if threading.current_thread() is not threading.main_thread():
        logger.debug("SIGTERM flush not installed: configure() ran outside the main thread")
        return False
    _flush, _budget = flush, budget
    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        _previous = current
        signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def uninstall() -> None:
    """Put the handler that was there before back (if spanhook's is still installed)."""
    global _previous
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, _previous if _previous is not None else signal.SIG_DFL)
    _previous = None


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    flush = _flush
    if flush is not None:
        # In a thread: the interrupted main thread may hold a lock the flush needs.
        worker = threading.Thread(
            target=flush, args=(_budget,), name="spanhook-sigterm-flush", daemon=True
        )
        worker.start()
        worker.join(_budget + 0.1)
    previous = _previous
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # the default action (or a handler set outside Python): end as it would have
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _reset_for_tests() -> None:
    global _flush
    uninstall()
    _flush = None
