"""Latency of an unrelated request while 8 other requests' sync handlers block for 5 s.

All requests are real asyncio tasks on one event loop (``LLMChain.ainvoke`` over the offline
model, each with a sync handler). The unrelated request's latency is measured alone
("normal"), then while the 8 slow handlers block ("under load"); the slow handlers are then
released. Run: ``python benchmarks/bench_slow_handler.py [--samples N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from typing import Any

from spanhook.callbacks import BaseCallbackHandler
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate


class Quick(BaseCallbackHandler):
    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        pass


class Blocking(BaseCallbackHandler):
    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        self.release.wait(5.0)


async def main(samples: int) -> None:
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{a} + {b} = "))

    async def latency() -> float:
        t0 = time.perf_counter()
        await chain.ainvoke({"a": 2, "b": 3}, callbacks=[Quick()])
        return (time.perf_counter() - t0) * 1e3

    for _ in range(20):
        await latency()
    normal = [await latency() for _ in range(samples)]
    release = threading.Event()
    slow = [
        asyncio.create_task(chain.ainvoke({"a": i, "b": 1}, callbacks=[Blocking(release)]))
        for i in range(8)
    ]
    await asyncio.sleep(0.2)
    loaded = [await latency() for _ in range(samples)]
    release.set()
    await asyncio.gather(*slow)
    for label, xs in (("normal", normal), ("under load", loaded)):
        print(f"{label:11s} median {statistics.median(xs):8.1f} ms   max {max(xs):8.1f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    asyncio.run(main(ap.parse_args().samples))
