"""Soak: many runs of every kind through spanhook's OTLP export, with flat memory and
every span accounted for.

The mix, repeated until ``--runs`` runs were made (default 200,000):

- ``LLMChain(OfflineLLM).invoke`` (chain -> llm, 2 spans), most of the runs;
- streams abandoned after the first chunk (``chain.stream`` then the generator dropped);
- raising runs (a tool that raises: an ERROR span each);
- cancelled runs: ``ainvoke`` tasks on one event loop, half of them cancelled while the
  model sleeps.

Spans go through ``spanhook.configure(exporters="otlp")`` to a real OTLP receiver in its own
process on 127.0.0.1 (``tests/fault_receiver.py``), which records every span id it
accepts. A span processor beside the export counts spans started and ended. At the end:
started = ended = exported (spanhook's counter) = received (distinct ids, none twice), no
span dropped, and the resident set size after warm-up stayed within +-10 MB.

Run from the repository root:

    .venv/bin/python benchmarks/soak.py [--runs 200000] [--protocol grpc|http/protobuf]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import spanhook
from fault_receiver import FaultReceiverProcess
from spanhook.chains import LLMChain
from spanhook.llms import FakeListLLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.tools import Tool

CYCLE = 100  # runs per cycle: 80 invoke, 8 abandoned streams, 6 raising, 6 async (3 cancelled)


class Counting(SpanProcessor):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.ended = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended += 1


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def drain(timeout: float) -> bool:
    """Flush until the export queue is empty (a flush gives up at a failed export, which
    the worker then retries)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spanhook.force_flush(timeout=max(0.1, deadline - time.monotonic())):
            return True
        time.sleep(0.2)
    return False


def _fail(text: str) -> str:
    raise ValueError(f"tool failed on {text!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--protocol", default="grpc", choices=["grpc", "http/protobuf"])
    args = parser.parse_args()

    prompt = PromptTemplate.from_template("Answer briefly: {q}")
    chain = LLMChain(llm=OfflineLLM(), prompt=prompt)
    slow_chain = LLMChain(llm=FakeListLLM(["slow answer"], sleep=0.02), prompt=prompt)
    failing = Tool(name="failing_tool", func=_fail, description="always raises")
    loop = asyncio.new_event_loop()

    async def cancelled_batch(n: int) -> tuple[int, int]:
        tasks = [asyncio.ensure_future(slow_chain.ainvoke({"q": f"a{i}"})) for i in range(n)]
        await asyncio.sleep(0.01)  # every task is now inside the model's sleep
        for t in tasks[::2]:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        return cancelled, n - cancelled

    with tempfile.TemporaryDirectory() as tmp, FaultReceiverProcess(args.protocol, Path(tmp)) as rx:
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = args.protocol
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = rx.endpoint
        tp = spanhook.configure(exporters="otlp", service_name="soak")
        counting = Counting()
        tp.add_span_processor(counting)
        kinds: Counter[str] = Counter()
        samples: list[tuple[int, float]] = []
        warmup = min(20_000, args.runs // 10)
        baseline = 0.0
        t0 = time.monotonic()
        runs = 0
        while runs < args.runs:
            for i in range(80):
                chain.invoke({"q": f"q{runs + i}"})
            kinds["invoke"] += 80
            for i in range(8):
                stream = chain.stream({"q": f"s{runs + i}"})
                next(iter(stream))
                del stream  # abandoned after the first chunk
            kinds["abandoned stream"] += 8
            for i in range(6):
                try:
                    failing.run(f"r{runs + i}")
                except ValueError:
                    kinds["raising"] += 1
            cancelled, finished = loop.run_until_complete(cancelled_batch(6))
            kinds["cancelled"] += cancelled
            kinds["async finished"] += finished
            runs += CYCLE
            if (runs >= warmup and not baseline) or runs % 20_000 == 0:
                # Measured with the export queue drained: a backlog is not a leak.
                drain(60.0)
                gc.collect()
                baseline = baseline or rss_mb()
                samples.append((runs, rss_mb()))
                print(f"  {runs:>7} runs  rss {samples[-1][1]:7.1f} MB", flush=True)
        elapsed = time.monotonic() - t0
        loop.close()
        flushed = drain(120.0)
        stats = spanhook.export_stats()
        deadline = time.monotonic() + 60
        while len(rx.received()) < stats.exported_spans and time.monotonic() < deadline:
            time.sleep(0.2)
        received = rx.received()
        repeats = sum(n - 1 for n in Counter(received).values() if n > 1)
        spanhook.shutdown(timeout=2.0)

    gc.collect()
    after = [mb for n, mb in samples if n >= warmup]
    drift = max((abs(mb - baseline) for mb in after), default=0.0)
    print(f"runs {runs} in {elapsed:.1f} s ({runs / elapsed:,.0f} runs/s): {dict(kinds)}")
    print(
        f"spans started {counting.started}, ended {counting.ended}, exported "
        f"{stats.exported_spans}, received {len(set(received))} (repeated {repeats}), "
        f"dropped {stats.dropped_spans}, queue drained {flushed}"
    )
    print(
        f"rss after warm-up ({warmup} runs) {baseline:.1f} MB, largest drift {drift:+.1f} MB "
        f"over {len(after)} samples (target +-10 MB)"
    )
    ok = (
        counting.started == counting.ended == stats.exported_spans == len(set(received))
        and repeats == 0
        and stats.dropped_spans == 0
        and drift <= 10
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
