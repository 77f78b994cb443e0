"""Per-run cost of ``ainvoke`` against ``invoke`` for a chain -> llm run with one handler.

The app is ``LLMChain(llm=OfflineLLM(), prompt=...)``: two runs (chain, model), five events
(``on_chain_start``, ``on_text``, ``on_llm_start``, ``on_llm_end``, ``on_chain_end``). Each
case is measured in the same process, sequential requests, spans through an SDK provider with
a batch processor and a null exporter:

- no handler;
- a sync handler (``BaseCallbackHandler``): in ``ainvoke`` each event runs in a worker
  thread so the handler never blocks the loop; with ``run_inline = True`` on the loop;
- an async handler (``AsyncCallbackHandler``): awaited on the loop in ``ainvoke``; in
  ``invoke`` each coroutine runs to completion on spanhook's handler loop thread.

Prints us/run and the ratio ainvoke / invoke for each handler kind (the baseline is
``invoke`` with the same handler, measured in the same run).

Run: ``python benchmarks/bench_async.py [--runs N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from spanhook.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate


class NullExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class SyncHandler(BaseCallbackHandler):
    def __init__(self) -> None:
        self.n = 0

    def on_chain_start(self, *a: Any, **k: Any) -> None:
        self.n += 1

    def on_chain_end(self, *a: Any, **k: Any) -> None:
        self.n += 1

    def on_text(self, *a: Any, **k: Any) -> None:
        self.n += 1

    def on_llm_start(self, *a: Any, **k: Any) -> None:
        self.n += 1

    def on_llm_end(self, *a: Any, **k: Any) -> None:
        self.n += 1


class InlineHandler(SyncHandler):
    run_inline = True


class AsyncHandler(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.n = 0

    async def on_chain_start(self, *a: Any, **k: Any) -> None:
        self.n += 1

    async def on_chain_end(self, *a: Any, **k: Any) -> None:
        self.n += 1

    async def on_text(self, *a: Any, **k: Any) -> None:
        self.n += 1

    async def on_llm_start(self, *a: Any, **k: Any) -> None:
        self.n += 1

    async def on_llm_end(self, *a: Any, **k: Any) -> None:
        self.n += 1


def sync_us(fn: Callable[[], object], runs: int) -> float:
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - t0) / runs * 1e6


async def async_us(fn: Callable[[], Awaitable[object]], runs: int) -> float:
    t0 = time.perf_counter()
    for _ in range(runs):
        await fn()
    return (time.perf_counter() - t0) / runs * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{a} + {b} = "))
    inputs = {"a": 1, "b": 2}

    cases: dict[str, list[Any]] = {
        "no handler": [],
        "sync handler": [SyncHandler()],
        "sync handler, run_inline": [InlineHandler()],
        "async handler": [AsyncHandler()],
    }
    best: dict[tuple[str, str], float] = {}

    async def measure_async(cbs: list[Any], runs: int) -> float:
        return await async_us(lambda: chain.ainvoke(inputs, callbacks=cbs), runs)

    loop = asyncio.new_event_loop()
    try:
        for _ in range(args.repeats):  # alternate sync and async samples: same machine load
            for name, cbs in cases.items():
                s = sync_us(lambda cbs=cbs: chain.invoke(inputs, callbacks=cbs), args.runs)
                a = loop.run_until_complete(measure_async(cbs, args.runs))
                best[(name, "invoke")] = min(best.get((name, "invoke"), s), s)
                best[(name, "ainvoke")] = min(best.get((name, "ainvoke"), a), a)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    print(
        f"runs per sample: {args.runs}, samples: {args.repeats} (best of), chain -> llm, 5 events"
    )
    print(f"{'handler':28s} {'invoke':>10s} {'ainvoke':>10s} {'ainvoke/invoke':>15s}")
    for name in cases:
        s, a = best[(name, "invoke")], best[(name, "ainvoke")]
        print(f"{name:28s} {s:8.1f}us {a:8.1f}us {a / s:15.2f}")
    base = best[("no handler", "invoke")]
    print(
        f"(baseline invoke, no handler: {base:.1f} us/run; each case against it: "
        + ", ".join(
            f"{n} {best[(n, m)] / base:.2f}x {m}"
            for n in cases
            for m in ("invoke", "ainvoke")
            if n != "no handler"
        )
        + ")"
    )
    provider.shutdown()


if __name__ == "__main__":
    main()
