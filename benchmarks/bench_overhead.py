"""Per-run cost of a spanhook chain run with one no-op handler, against two baselines
measured in the same process:

(a) a raw OTel SDK span, ``tracer.start_as_current_span``, through the same span processor;
(b) langchain-core's ``RunnableLambda.invoke`` with one no-op handler (``pip install
    spanhook[bench]``).

Run: ``python benchmarks/bench_overhead.py [--runs N] [--repeats R]``. Prints us/run and the
ratios; the figures go to benchmarks/RESULTS.md. Targets: <= 1.3x (a), >= 5x faster than (b).

Two more baselines in (a) show what the target leaves room for: the raw span carrying the two
attributes every run must record, and a hand-written minimum chain run (that span made
current plus the handler's two calls, nothing general): no implementation on the public SDK
API can cost less than the latter.
"""

from __future__ import annotations

import argparse
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


#: The two attributes every spanhook run must carry (DESIGN section 4: ``spanhook.run.kind``,
#: and ``spanhook.run_id`` so that a Jaeger search finds the run).
REQUIRED_ATTRIBUTES = {
    "spanhook.run.kind": "chain",
    "spanhook.run_id": "123e4567-e89b-42d3-a456-426614174000",
}


def minimum_chain_run(tracer: trace.Tracer, handler: Any, lean: bool = False) -> Callable[[], None]:
    """The least any implementation of a chain run with one handler can do through the
    public OTel SDK API, written out by hand with nothing general about it: a fresh run id
    (with spanhook's generator, the cheapest we know, so as not to overstate the floor), a
    span with the two required attributes made current, the handler's start and end calls
    with langchain-core's arguments, the span ended. The floor under spanhook's cost.

    ``lean``: the same, but the span starts the way spanhook starts a run's span, below the
    public API (``runtime.spans.start_span``: the direct attribute path and the lean start).
    spanhook against this one shows what it adds besides starting the span."""
    from opentelemetry import context
    from opentelemetry.trace import set_span_in_context

    from spanhook.runtime.spans import new_run_id, start_span

    INTERNAL = trace.SpanKind.INTERNAL

    serialized = {"lc": 1, "type": "not_implemented", "id": ["bench", "Echo"], "name": "Echo"}

    def run() -> None:
        run_id = new_run_id()
        ctx = context.get_current()
        attributes = {"spanhook.run.kind": "chain", "spanhook.run_id": str(run_id)}
        if lean:  # the span started the way spanhook starts it (runtime.spans.start_span)
            span = start_span(tracer, "Echo", ctx, INTERNAL, attributes, True)
        else:
            span = tracer.start_span("Echo", context=ctx, attributes=attributes)
        token = context.attach(set_span_in_context(span, ctx))
        inputs = {"x": 1}
        handler.on_chain_start(
            serialized, inputs, run_id=run_id, parent_run_id=None, tags=[], metadata={}, name="Echo"
        )
        outputs = {"y": inputs["x"]}
        handler.on_chain_end(outputs, run_id=run_id, parent_run_id=None, tags=[])
        span.end()
        context.detach(token)

    return run


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


def langchain_variant() -> Callable[[], object] | None:
    try:
        from langchain_core.callbacks import BaseCallbackHandler as LCHandler
        from langchain_core.runnables import RunnableLambda
    except ImportError:
        print("langchain-core not installed: pip install 'spanhook[bench]' for baseline (b)")
        return None

    class LCNoOp(LCHandler):
        def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            pass

        def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
            pass

    lc_handler = LCNoOp()
    runnable = RunnableLambda(lambda d: {"y": d["x"]})

    def langchain() -> None:
        runnable.invoke({"x": 1}, config={"callbacks": [lc_handler]})

    return langchain


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2_000, help="calls per round")
    ap.add_argument("--repeats", type=int, default=25, help="interleaved rounds")
    args = ap.parse_args()

    handler = NoOpHandler()
    chain = Echo()
    chain_ctor = Echo(callbacks=[handler])

    def spanhook_request() -> None:
        chain.invoke({"x": 1}, callbacks=[handler])

    def spanhook_ctor() -> None:
        chain_ctor.invoke({"x": 1})

    # (b) langchain-core, which records no spans, against spanhook with no OTel consumer
    # configured (its spans are then non-recording): the callback machinery alone.
    langchain = langchain_variant()
    if langchain is not None:
        b = measure(
            {
                "langchain-core RunnableLambda.invoke": langchain,
                "spanhook chain (no OTel consumer)": spanhook_request,
            },
            max(200, args.runs // 4),
            args.repeats,
        )

    # (a) an application SDK provider with a batch processor: every run is a recorded span.
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bench")

    def raw_span() -> None:
        with tracer.start_as_current_span("Echo"):
            pass

    def raw_span_attrs() -> None:
        with tracer.start_as_current_span("Echo", attributes=REQUIRED_ATTRIBUTES):
            pass

    variants: dict[str, Callable[[], object]] = {
        "raw OTel start_as_current_span": raw_span,
        "raw span + the 2 required attributes": raw_span_attrs,
        "hand-written minimum chain run": minimum_chain_run(tracer, handler),
        "the same, spanhook's span start": minimum_chain_run(tracer, handler, lean=True),
        "spanhook chain, request handler": spanhook_request,
        "spanhook chain, constructor handler": spanhook_ctor,
    }
    if langchain is not None:
        variants["langchain-core RunnableLambda.invoke"] = langchain
    a = measure(variants, args.runs, args.repeats)

    print("(a) application SDK TracerProvider + BatchSpanProcessor(no-op exporter)")
    for name, us in a.items():
        print(f"  {name:42s} {us:8.2f} us/run")
    raw = a["raw OTel start_as_current_span"]
    ours = a["spanhook chain, request handler"]
    print(f"  spanhook / raw OTel span              = {ours / raw:.2f}x (target <= 1.3x)")
    print(
        f"  spanhook(ctor) / raw OTel span        = {a['spanhook chain, constructor handler'] / raw:.2f}x"
    )
    print(
        f"  hand-written minimum / raw OTel span  = {a['hand-written minimum chain run'] / raw:.2f}x"
        " (the floor of any implementation)"
    )
    print(
        f"  spanhook / raw span + 2 attributes    = {ours / a['raw span + the 2 required attributes']:.2f}x"
    )
    print(
        f"  spanhook / hand-written minimum       = {ours / a['hand-written minimum chain run']:.2f}x"
    )
    same_start = a["the same, spanhook's span start"]
    print(
        f"  spanhook / the same, spanhook's span start = {ours / same_start:.2f}x"
        " (what spanhook adds besides the span start)"
    )
    if langchain is not None:
        print(
            f"  langchain-core / spanhook             = {a['langchain-core RunnableLambda.invoke'] / ours:.1f}x"
        )
        print("(b) no OTel consumer configured (langchain-core records no spans either)")
        for name, us in b.items():
            print(f"  {name:42s} {us:8.2f} us/run")
        lc, light = (
            b["langchain-core RunnableLambda.invoke"],
            b["spanhook chain (no OTel consumer)"],
        )
        print(f"  langchain-core / spanhook             = {lc / light:.1f}x faster (target >= 5x)")
    provider.shutdown()


if __name__ == "__main__":
    main()
