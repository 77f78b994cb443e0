"""Where a spanhook run's cost goes, in instructions (deterministic, unlike wall time on a
shared machine): each variant runs under ``valgrind --tool=callgrind`` twice (0 and N
calls) and the difference is divided by N. Ratios are against the raw OTel span of the
same run.

Run: ``python benchmarks/overhead_breakdown.py [--calls N]`` (needs valgrind; ~1 min).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from typing import Any

VARIANTS = {
    "raw": "raw OTel start_as_current_span",
    "raw_span_attach": "raw start_span + attach/detach + end (no contextlib)",
    "raw_attrs": "raw start_as_current_span + spanhook's 2 attributes",
    "minimum": "hand-written minimum chain run (2 attributes, 2 direct handler calls)",
    "run_only": "spanhook Run, no handler",
    "run_handler": "spanhook Run, one no-op handler",
    "chain_no_handler": "spanhook chain.invoke, no handler",
    "chain_handler": "spanhook chain.invoke, request handler",
}


def child(which: str, calls: int) -> None:
    sys.path.insert(0, "benchmarks")
    from bench_overhead import (
        REQUIRED_ATTRIBUTES,
        BatchSpanProcessor,
        Echo,
        NoOpHandler,
        NullExporter,
        TracerProvider,
        minimum_chain_run,
        trace,
    )
    from opentelemetry import context
    from opentelemetry.trace import set_span_in_context

    from spanhook.runtime.scope import Request, RunDefaults
    from spanhook.runtime.start import start_run
    from spanhook.tracing.provider import get_tracer

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)
    # spanhook adds its foreign-span router to the application's provider on first use: every
    # variant runs with it, as in bench_overhead.py, where all variants share one provider.
    get_tracer()
    tracer = trace.get_tracer("bench")
    handler, chain, owner, request = NoOpHandler(), Echo(), RunDefaults(), Request([NoOpHandler()])
    attrs = REQUIRED_ATTRIBUTES
    minimum = minimum_chain_run(tracer, handler)

    def raw() -> None:
        with tracer.start_as_current_span("Echo"):
            pass

    def raw_span_attach() -> None:
        span = tracer.start_span("Echo")
        token = context.attach(set_span_in_context(span))
        context.detach(token)
        span.end()

    def raw_attrs() -> None:
        with tracer.start_as_current_span("Echo", attributes=attrs):
            pass

    def run_only() -> None:
        with start_run("chain", owner, None, name="Echo", span_name="Echo", start_args=({}, {})):
            pass

    def run_handler() -> None:
        with start_run("chain", owner, request, name="Echo", span_name="Echo", start_args=({}, {})):
            pass

    def chain_no_handler() -> None:
        chain.invoke({"x": 1})

    def chain_handler() -> None:
        chain.invoke({"x": 1}, callbacks=[handler])

    fn: Any = locals()[which]
    for _ in range(200):
        fn()
    for _ in range(calls):
        fn()
    provider.shutdown()


def instructions(which: str, calls: int) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            which,
            str(calls),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", out.stderr)
    if not match:
        raise RuntimeError(f"no callgrind total in: {out.stderr[-500:]}")
    return int(match.group(1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    per_call = {}
    for which in VARIANTS:
        per_call[which] = (instructions(which, args.calls) - instructions(which, 0)) / args.calls
    raw = per_call["raw"]
    print(f"{'variant':58s} {'instr/call':>11s} {'vs raw':>7s}")
    for which, label in VARIANTS.items():
        print(f"{label:58s} {per_call[which]:11,.0f} {per_call[which] / raw:6.2f}x")


if __name__ == "__main__":
    main()
