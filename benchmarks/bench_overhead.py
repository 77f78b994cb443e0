"""Per-run cost of a spanhook chain run with one no-op handler, against two baselines
measured in the same process:

(a) a raw OTel SDK span, ``tracer.start_as_current_span``, through the same span processor;
(b) langchain-core's ``RunnableLambda.invoke`` with one no-op handler (``pip install
    spanhook[bench]``).

Run: ``python benchmarks/bench_overhead.py [--runs N] [--repeats R]``. Prints us/run and the
ratios; the figures go to benchmarks/RESULTS.md. Targets: <= 1.3x (a), >= 5x faster than (b).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from spanhook.callbacks import BaseCallbackHandler
from spanhook.chains import Chain


class NullExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class NoOpHandler(BaseCallbackHandler):
    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        pass

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        pass


class Echo(Chain):
    input_keys = ["x"]
    output_keys = ["y"]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"y": inputs["x"]}


def measure(variants: dict[str, Callable[[], object]], runs: int, rounds: int) -> dict[str, float]:
    """Microseconds per call of each variant: the minimum over ``rounds`` of the mean over
    ``runs`` calls. Rounds interleave the variants (A B C, A B C, ...) so that a noisy
    neighbour on a shared machine slows them alike, and the minimum keeps the quietest."""
    for fn in variants.values():
        for _ in range(min(runs, 2000)):
            fn()
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(runs):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / runs * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2_000, help="calls per round")
    ap.add_argument("--repeats", type=int, default=25, help="interleaved rounds")
    args = ap.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bench")

    def raw_span() -> None:
        with tracer.start_as_current_span("Echo"):
            pass

    handler = NoOpHandler()
    chain = Echo()

    def spanhook_request() -> None:
        chain.invoke({"x": 1}, callbacks=[handler])

    chain_ctor = Echo(callbacks=[handler])

    def spanhook_ctor() -> None:
        chain_ctor.invoke({"x": 1})

    variants: dict[str, Callable[[], object]] = {
        "raw OTel start_as_current_span": raw_span,
        "spanhook chain, request handler": spanhook_request,
        "spanhook chain, constructor handler": spanhook_ctor,
    }
    results = measure(variants, args.runs, args.repeats)
    try:
        from langchain_core.callbacks import BaseCallbackHandler as LCHandler
        from langchain_core.runnables import RunnableLambda
    except ImportError:
        print("langchain-core not installed: pip install 'spanhook[bench]' for baseline (b)")
        lc = None
    else:

        class LCNoOp(LCHandler):
            def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
                pass

            def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
                pass

        lc_handler = LCNoOp()
        runnable = RunnableLambda(lambda d: {"y": d["x"]})

        def langchain() -> None:
            runnable.invoke({"x": 1}, config={"callbacks": [lc_handler]})

        lc_variants = {"langchain-core RunnableLambda.invoke": langchain, **variants}
        lc_results = measure(lc_variants, max(500, args.runs // 10), args.repeats)
        lc = lc_results["langchain-core RunnableLambda.invoke"]
        results["langchain-core RunnableLambda.invoke"] = lc
        lc_ours = lc_results["spanhook chain, request handler"]

    for name, us in results.items():
        print(f"{name:40s} {us:8.2f} us/run")
    raw = results["raw OTel start_as_current_span"]
    ours = results["spanhook chain, request handler"]
    print(f"\nspanhook / raw OTel span          = {ours / raw:.2f}x (target <= 1.3x)")
    print(f"spanhook(ctor) / raw OTel span    = {results['spanhook chain, constructor handler'] / raw:.2f}x")
    if lc is not None:
        print(f"langchain-core / spanhook         = {lc / lc_ours:.1f}x faster (target >= 5x)")
    provider.shutdown()


if __name__ == "__main__":
    main()
