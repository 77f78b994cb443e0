"""Sync handlers in async runs: one serial worker thread per handler object.

A slow sync handler delays only the requests it is part of: not every request sharing the
event loop's default executor, nor spanhook's own thread hops. Each handler's events keep
their order, and idle workers exit.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from typing import Any

from helpers import Recorder
from spanhook.callbacks import BaseCallbackHandler
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.runtime import workers


class Blocking(BaseCallbackHandler):
    """A sync handler that blocks its thread for up to 5 s on every chain start."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        self.release.wait(5.0)


def _chain() -> LLMChain:
    return LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{a} + {b} = "))


async def _latency(chain: LLMChain) -> float:
    t0 = time.perf_counter()
    out = await chain.ainvoke({"a": 2, "b": 3}, callbacks=[Recorder()])
    assert out["text"]
    return time.perf_counter() - t0


def test_a_slow_sync_handler_delays_only_its_own_requests() -> None:
    chain = _chain()
    release = threading.Event()

    async def main() -> tuple[float, float, list[float]]:
        normal = statistics.median([await _latency(chain) for _ in range(5)])
        slow = [
            asyncio.create_task(chain.ainvoke({"a": i, "b": 1}, callbacks=[Blocking(release)]))
            for i in range(8)
        ]
        await asyncio.sleep(0.2)  # the 8 requests are now blocked in their handlers
        assert not any(t.done() for t in slow)
        loaded = [await _latency(chain) for _ in range(5)]
        release.set()
        await asyncio.gather(*slow)
        return normal, statistics.median(loaded), loaded

    normal, loaded, samples = asyncio.run(main())
    print(f"\nunrelated request: normal {normal * 1e3:.1f} ms, under load {loaded * 1e3:.1f} ms")
    # the handlers block for 5 s: sharing a thread pool with them would cost seconds
    assert max(samples) < normal + 1.0, (normal, samples)


def test_each_handler_gets_its_events_in_order_across_concurrent_runs() -> None:
    class Slowish(Recorder):
        def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
            time.sleep(0.002)
            self._record("on_chain_start", args, kwargs)

    rec = Slowish()
    chain = _chain()

    async def main() -> None:
        await asyncio.gather(*(chain.ainvoke({"a": i, "b": i}, callbacks=[rec]) for i in range(10)))

    asyncio.run(main())
    for run_id in rec.run_ids():
        mine = [e.event for e in rec.events if e.run_id == run_id]
        assert mine[0].endswith("_start") and mine[-1].endswith("_end"), mine
    # all of the handler's calls ran on its one worker thread
    assert len(rec.of("on_chain_start")) == 10


def test_a_worker_runs_jobs_in_order_and_its_thread_exits_when_idle(monkeypatch: Any) -> None:
    monkeypatch.setattr(workers, "IDLE_TIMEOUT", 0.05)
    worker = workers.SerialWorker("spanhook-test-worker")
    seen: list[int] = []
    futures = [worker.submit(lambda i=i: seen.append(i) or i) for i in range(50)]  # type: ignore[func-returns-value]
    assert [f.result(timeout=5) for f in futures] == list(range(50))
    assert seen == list(range(50))
    deadline = time.monotonic() + 5
    while any(t.name == "spanhook-test-worker" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "idle worker thread did not exit"
        time.sleep(0.01)
    # and starts again on the next job
    assert worker.submit(lambda: 7).result(timeout=5) == 7


def test_a_handler_exception_reaches_the_awaiting_run_through_its_worker() -> None:
    worker = workers.SerialWorker("spanhook-test-worker-2")

    def fail() -> None:
        raise KeyboardInterrupt("in worker")

    fut = worker.submit(fail)
    exc = fut.exception(timeout=5)
    assert isinstance(exc, KeyboardInterrupt)


def test_worker_threads_stay_bounded_with_many_handler_objects() -> None:
    release = threading.Event()
    handlers = [Blocking(release) for _ in range(workers.MAX_DEDICATED + 40)]
    chain = _chain()

    async def main() -> int:
        tasks = [
            asyncio.create_task(chain.ainvoke({"a": 1, "b": 1}, callbacks=[h])) for h in handlers
        ]
        await asyncio.sleep(0.3)
        live = sum(t.name.startswith("spanhook-handler") for t in threading.enumerate())
        release.set()
        await asyncio.gather(*tasks)
        return live

    live = asyncio.run(main())
    assert 0 < live <= workers.MAX_DEDICATED + workers.SHARED_WORKERS
