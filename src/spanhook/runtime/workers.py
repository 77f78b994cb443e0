"""A serial worker thread per sync handler object, for sync handlers called from async runs.

A sync handler must not block the event loop, so async runs call it in a thread. Each
handler object gets a worker of its own: a slow handler delays only the requests it is part
of (not every request sharing the loop's default executor, nor spanhook's other thread
hops), and one thread per handler keeps that handler's events in the order they were sent.

A worker's thread exits after :data:`IDLE_TIMEOUT` seconds without work and is started
again on the next event; workers are keyed weakly by handler, and at most
:data:`MAX_DEDICATED` worker threads alive, later handlers share :data:`SHARED_WORKERS`
serial workers (dedicated workers of earlier handlers may still restart their thread).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

#: Seconds a worker thread waits for more work before it exits.
IDLE_TIMEOUT = 2.0

_Job = tuple[Callable[[], Any], "concurrent.futures.Future[Any]", contextvars.Context]


class SerialWorker:
    """Runs submitted calls one after the other, in submission order, on one thread."""

    __slots__ = ("_cond", "_jobs", "_name", "_running")

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._running = False

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``fn`` (in a copy of the caller's contextvars context) after the calls
        submitted before it."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        job = (fn, fut, contextvars.copy_context())
        with self._cond:
            self._jobs.append(job)
            if self._running:
                self._cond.notify()
                return fut
            self._running = True
        global _live
        with _lock:
            _live += 1
        threading.Thread(target=self._work, name=self._name, daemon=True).start()
        return fut

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    self._cond.wait(IDLE_TIMEOUT)
                    if not self._jobs:
                        self._running = False
                        _thread_exits()
                        return
                fn, fut, ctx = self._jobs.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = ctx.run(fn)
            except BaseException as e:  # delivered to the awaiting run, never lost here
                fut.set_exception(e)
            else:
                fut.set_result(result)


#: While this many worker threads are alive, handlers seen for the first time share one of
#: :data:`SHARED_WORKERS` serial workers (picked by object identity, so each handler still
#: gets its events in order on one thread) instead of getting a worker of their own.
MAX_DEDICATED = 64
SHARED_WORKERS = 8

_lock = threading.Lock()
_live = 0  # worker threads alive


def _thread_exits() -> None:
    global _live
    with _lock:
        _live -= 1


_workers: weakref.WeakKeyDictionary[Any, SerialWorker] = weakref.WeakKeyDictionary()
_shared = [SerialWorker(f"spanhook-handlers-{i}") for i in range(SHARED_WORKERS)]


def worker_for(handler: object) -> SerialWorker:
    """The serial worker of ``handler``: its own, or a shared one when :data:`MAX_DEDICATED`
    worker threads are alive or ``handler`` cannot be weakly referenced."""
    try:
        worker = _workers.get(handler)
        if worker is not None:
            return worker
        with _lock:
            worker = _workers.get(handler)
            if worker is None and _live < MAX_DEDICATED:
                name = f"spanhook-handler-{type(handler).__name__}"
                worker = _workers[handler] = SerialWorker(name)
    except TypeError:  # unhashable or not weakly referenceable
        worker = None
    return worker if worker is not None else _shared[id(handler) // 16 % SHARED_WORKERS]
