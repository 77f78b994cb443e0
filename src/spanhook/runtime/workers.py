"""Threads for sync handlers called from async runs: a mailbox per handler, a shared pool.

A sync handler must not block the event loop, so async runs call it in a thread. Each
handler object gets a :class:`SerialWorker`, a mailbox whose calls run one after the other,
in the order they were sent (so each handler sees its events in order). Mailboxes hold no
thread of their own: a pool of threads, started on demand and ended after
:data:`IDLE_TIMEOUT` seconds without work, drains whichever mailboxes have work. While one
handler blocks, its thread is busy and the next mailbox with work gets another thread, so a
slow handler delays only the requests it is part of; nothing is queued behind it but its own
events. At most :data:`MAX_THREADS` threads run at once; past that, mailboxes wait for the
first free thread (only that many handlers blocked at the same moment can delay others).
A pool thread takes the name of the mailbox it is draining, so a stack dump names the handler.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from spanhook._state import STATE

#: Seconds a pool thread waits for more work before it exits.
IDLE_TIMEOUT = 2.0
#: Threads running handlers at most at once.
MAX_THREADS = 64
#: Calls a thread runs from one mailbox before it lets the other mailboxes go first.
_BATCH = 32
_IDLE_NAME = "spanhook-handlers"

_Job = tuple[Callable[[], Any], "concurrent.futures.Future[Any]", contextvars.Context]


class _Pool:
    """Threads that drain ready mailboxes (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._ready: deque[SerialWorker] = deque()
        self._threads = 0
        self._idle = 0

    def schedule(self, worker: SerialWorker) -> None:
        with self._cond:
            self._ready.append(worker)
            if self._idle:  # claim one waiting thread, so the next call counts it as busy
                self._idle -= 1
                self._cond.notify()
                return
            if self._threads >= MAX_THREADS:
                return  # the first thread to free up takes it
            self._threads += 1
        threading.Thread(target=self._work, name=_IDLE_NAME, daemon=True).start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._ready:
                    self._idle += 1
                    if not self._cond.wait(IDLE_TIMEOUT):  # timed out, not claimed
                        self._idle = max(0, self._idle - 1)
                        if not self._ready:
                            self._threads -= 1
                            return
                worker = self._ready.popleft()
            me.name = worker.name
            try:
                more = worker.drain(_BATCH)
            finally:
                me.name = _IDLE_NAME
            if more:
                self.schedule(worker)


_pool = _Pool()


class SerialWorker:
    """A mailbox: submitted calls run one after the other, in submission order, on the
    pool's threads."""

    __slots__ = ("__weakref__", "_jobs", "_lock", "_scheduled", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: deque[_Job] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``fn`` (in a copy of the caller's contextvars context) after the calls
        submitted before it."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._jobs.append((fn, fut, contextvars.copy_context()))
            if self._scheduled:
                return fut
            self._scheduled = True
        _pool.schedule(self)
        return fut

    def drain(self, limit: int) -> bool:
        """Run up to ``limit`` calls in order; whether calls are left (still scheduled)."""
        for _ in range(limit):
            with self._lock:
                if not self._jobs:
                    self._scheduled = False
                    return False
                fn, fut, ctx = self._jobs.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = ctx.run(fn)
            except BaseException as e:  # delivered to the awaiting run, never lost here
                fut.set_exception(e)
            else:
                fut.set_result(result)
        with self._lock:
            if self._jobs:
                return True
            self._scheduled = False
            return False


_lock = threading.Lock()


def worker_for(handler: object) -> SerialWorker:
    """The mailbox of ``handler`` (made on first use, kept while the handler lives)."""
    name = f"spanhook-handler-{type(handler).__name__}"
    _workers = STATE.workers
    try:
        worker = _workers.get(handler)
        if worker is not None:
            return worker
        with _lock:
            worker = _workers.get(handler)
            if worker is None:
                worker = _workers[handler] = SerialWorker(name)
        return worker
    except TypeError:  # unhashable or not weakly referenceable
        # handlers that cannot be weakly referenced: one mailbox per object id, dropped again
        # when it has no work (a later object with the same id gets a fresh one)
        _by_id = STATE.workers_by_id
        with _lock:
            for key in [k for k, w in _by_id.items() if not w._scheduled]:
                del _by_id[key]
            worker = _by_id.get(id(handler))
            if worker is None:
                worker = _by_id[id(handler)] = SerialWorker(name)
        return worker
