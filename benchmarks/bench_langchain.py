"""Tracing a langchain-core app: cost and memory of spanhook.langchain against untraced
langchain-core and the two incumbent OTel instrumentations, OpenInference
(``openinference-instrumentation-langchain``) and OpenLLMetry
(``opentelemetry-instrumentation-langchain``); ``pip install 'spanhook[bench]'``.

``overhead``: one process, all variants interleaved in every round (a noisy neighbour slows
them alike), minimum per variant over the rounds. Workloads: a one-run ``RunnableLambda``
and a five-run chain (``RunnableLambda | ChatPromptTemplate | chat model | StrOutputParser``).
All spans go through one SDK ``TracerProvider`` with a ``BatchSpanProcessor`` and an exporter
that drops them; spans per run are checked during the rounds.

Toggling: both incumbents hook ``BaseCallbackManager.__init__``, and OpenLLMetry's
``uninstrument()`` leaves its hook installed. Each incumbent is therefore instrumented once,
its own ``__init__`` wrapper kept, and the harness swaps the wrappers in and out of the class
per variant. spanhook is toggled with ``instrument()`` / ``uninstrument()``, which restore
exactly.

``memory``: a fresh process per variant: RSS growth over 100k traced ``RunnableLambda`` runs
(after a warm-up), and over 10k abandoned ``chain.stream`` requests (one chunk, dropped).

``instructions``: instructions per request under callgrind (valgrind), untraced and with
spanhook, with ``PYTHONHASHSEED=0`` after a warm-up and ``gc.freeze()``: the difference
between runs of 0 and ``--calls`` requests. Steadier than wall time on a shared machine (it
still moves by about 2% from run to run).

Run: ``python benchmarks/bench_langchain.py overhead [--rounds R]``,
``python benchmarks/bench_langchain.py memory`` and
``python benchmarks/bench_langchain.py instructions [--calls N]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class CountingExporter(SpanExporter):
    """Drops spans, counting them."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def build_workloads() -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], Any]]:
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda

    lam = RunnableLambda(lambda x: x + 1)
    prompt = ChatPromptTemplate.from_messages([("system", "Be terse."), ("human", "{topic}")])
    model = FakeListChatModel(responses=["a short answer about the topic"])
    chain = RunnableLambda(lambda x: {"topic": str(x["topic"]).strip()}) | prompt | model
    chain = chain | StrOutputParser()
    return (
        lambda: lam.invoke(1),
        lambda: chain.invoke({"topic": "cats"}),
        lambda: chain.stream({"topic": "cats"}),
    )


class FloorHandler:
    """The least any callback integration can do: a span per run, started and made current
    in ``on_*_start``, ended and detached in ``on_*_end`` (``run_inline``)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        from langchain_core.callbacks import BaseCallbackHandler
        from opentelemetry import context as otel_context

        open_spans: dict[Any, Any] = {}

        class Floor(BaseCallbackHandler):
            run_inline = True

            def on_chain_start(
                self, serialized: Any, inputs: Any, *, run_id: Any, **kw: Any
            ) -> None:
                span = tracer.start_span("run")
                token = otel_context.attach(trace.set_span_in_context(span))
                open_spans[run_id] = (span, token)

            def on_chain_end(self, outputs: Any, *, run_id: Any, **kw: Any) -> None:
                span, token = open_spans.pop(run_id)
                span.end()
                otel_context.detach(token)

            on_chat_model_start = on_chain_start  # type: ignore[assignment]
            on_llm_end = on_chain_end

        self.handler = Floor()


def _timed(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def overhead(rounds: int, lambda_calls: int, chain_calls: int) -> None:
    from langchain_core.callbacks import base as lc_base
    from openinference.instrumentation.langchain import LangChainInstrumentor as OpenInference
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor as OpenLLMetry

    import spanhook.langchain

    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65_536))
    trace.set_tracer_provider(provider)

    manager_cls = lc_base.BaseCallbackManager
    plain_init = manager_cls.__dict__["__init__"]
    OpenInference().instrument(tracer_provider=provider)
    openinference_init = manager_cls.__dict__["__init__"]
    manager_cls.__init__ = plain_init  # type: ignore[method-assign]
    OpenLLMetry().instrument(tracer_provider=provider)
    openllmetry_init = manager_cls.__dict__["__init__"]
    manager_cls.__init__ = plain_init  # type: ignore[method-assign]

    from contextvars import ContextVar

    from langchain_core.tracers.context import register_configure_hook

    floor_var: ContextVar[Any] = ContextVar("bench_floor", default=None)
    register_configure_hook(floor_var, inheritable=True)
    floor = FloorHandler(provider.get_tracer("floor")).handler

    def use(variant: str) -> None:
        floor_var.set(floor if variant == "floor handler" else None)
        spanhook.langchain.uninstrument()
        manager_cls.__init__ = {  # type: ignore[method-assign]
            "openinference": openinference_init,
            "openllmetry": openllmetry_init,
        }.get(variant, plain_init)
        if variant == "spanhook":
            spanhook.langchain.instrument()

    lam, chain, _ = build_workloads()
    tracer = provider.get_tracer("bench")
    gc.collect()
    gc.freeze()  # the import-time heap is not re-scanned by every collection of every variant

    def raw_span() -> None:
        with tracer.start_as_current_span("raw"):
            pass

    variants = ["untraced", "floor handler", "spanhook", "openinference", "openllmetry"]
    best: dict[str, float] = {}
    spans_per_run: dict[str, float] = {}
    for _ in range(rounds):
        best["raw OTel span"] = min(best.get("raw OTel span", 1e9), _timed(raw_span, lambda_calls))
        for workload, fn, calls, runs in (
            ("lambda", lam, lambda_calls, 1),
            ("chain", chain, chain_calls, 5),
        ):
            for variant in variants:
                use(variant)
                for _ in range(20):
                    fn()
                provider.force_flush()
                before = exporter.count
                us = _timed(fn, calls)
                provider.force_flush()
                key = f"{workload} {variant}"
                best[key] = min(best.get(key, 1e9), us)
                spans_per_run[key] = (exporter.count - before) / (calls * runs)
    use("untraced")

    print(f"overhead: {rounds} interleaved rounds, min per variant (us per call)")
    print(f"  raw OTel start_as_current_span          {best['raw OTel span']:9.2f}")
    for workload, runs in (("lambda", 1), ("chain", 5)):
        base = best[f"{workload} untraced"]
        label = "RunnableLambda.invoke (1 run)" if workload == "lambda" else "app chain (5 runs)"
        print(f"  {label}")
        for variant in variants:
            key = f"{workload} {variant}"
            added = best[key] - base
            print(
                f"    {variant:14s} {best[key]:9.2f} us  added {added:+8.1f} us"
                f" ({added / runs:+6.1f} us/run)  {best[key] / base:5.2f}x untraced"
                f"  spans/run {spans_per_run[key]:.2f}"
            )
    for workload in ("lambda", "chain"):
        s = best[f"{workload} spanhook"] - best[f"{workload} untraced"]
        for other in ("openinference", "openllmetry"):
            o = best[f"{workload} {other}"] - best[f"{workload} untraced"]
            print(f"  {workload}: {other} adds {o / s:4.1f}x what spanhook adds")
        f = best[f"{workload} floor handler"] - best[f"{workload} untraced"]
        print(f"  {workload}: spanhook adds {s / f:4.2f}x what the floor handler adds")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import resource

    return pages * resource.getpagesize() / 2**20


def memory_child(variant: str, what: str) -> None:
    provider = TracerProvider()
    exporter = CountingExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65_536))
    trace.set_tracer_provider(provider)
    import spanhook.langchain

    if variant == "spanhook":
        spanhook.langchain.instrument()
    lam, _, stream = build_workloads()
    n = 100_000 if what == "runs" else 10_000

    def step() -> None:
        if what == "runs":
            lam()
        else:
            next(iter(stream()))  # one chunk, then the stream is dropped

    for _ in range(2_000 if what == "runs" else 500):
        step()
    gc.collect()
    provider.force_flush()
    before, objects_before = _rss_mb(), len(gc.get_objects())
    for _ in range(n):
        step()
    gc.collect()
    provider.force_flush()
    from spanhook.langchain.tracer import TRACER

    print(
        json.dumps(
            {
                "variant": variant,
                "what": what,
                "n": n,
                "rss_growth_mb": round(_rss_mb() - before, 2),
                "objects_growth": len(gc.get_objects()) - objects_before,
                "open_runs": len(TRACER.runs) + len(TRACER.pending) + len(TRACER.closed_early),
                "spans": exporter.count,
            }
        )
    )


def memory() -> None:
    print("memory: fresh process per variant, RSS growth after a warm-up")
    for what in ("runs", "abandoned-streams"):
        for variant in ("untraced", "spanhook"):
            out = subprocess.run(
                [sys.executable, __file__, "memory-child", variant, what],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"  {what:18s} {variant:9s} n={r['n']:>6}  RSS +{r['rss_growth_mb']:5.2f} MB"
                f"  live objects {r['objects_growth']:+d}  open runs {r['open_runs']}"
                f"  spans {r['spans']}"
            )


def instructions_child(variant: str, workload: str, calls: int) -> None:
    """``calls`` requests after a warm-up and ``gc.freeze()`` (run under callgrind)."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(CountingExporter(), max_queue_size=65_536))
    trace.set_tracer_provider(provider)
    if variant == "spanhook":
        import spanhook.langchain

        spanhook.langchain.instrument()
    lam, chain, _ = build_workloads()
    fn = lam if workload == "lambda" else chain
    for _ in range(200):
        fn()
    gc.collect()
    gc.freeze()
    for _ in range(calls):
        fn()


def _callgrind(variant: str, workload: str, calls: int) -> int:
    out = subprocess.run(
        [
            *("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable),
            *(__file__, "instructions-child", variant, workload, str(calls)),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    ).stderr
    return int(out.split("Collected : ")[1].split()[0])


def instructions(calls: int) -> None:
    """Instructions per request (callgrind): the difference between 0 and ``calls``."""
    print(f"instructions per request (callgrind, PYTHONHASHSEED=0, {calls} calls)")
    for workload in ("lambda", "chain"):
        per = {}
        for variant in ("untraced", "spanhook"):
            base = _callgrind(variant, workload, 0)
            per[variant] = (_callgrind(variant, workload, calls) - base) // calls
        added = per["spanhook"] - per["untraced"]
        print(
            f"  {workload:7s} untraced {per['untraced']:>10,}  spanhook {per['spanhook']:>10,}"
            f"  added {added:>9,}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--rounds", type=int, default=15)
    o.add_argument("--lambda-calls", type=int, default=2000)
    o.add_argument("--chain-calls", type=int, default=400)
    sub.add_parser("memory")
    c = sub.add_parser("memory-child")
    c.add_argument("variant")
    c.add_argument("what")
    i = sub.add_parser("instructions")
    i.add_argument("--calls", type=int, default=500)
    ic = sub.add_parser("instructions-child")
    ic.add_argument("variant")
    ic.add_argument("workload")
    ic.add_argument("calls", type=int)
    args = parser.parse_args(argv)
    if args.cmd == "overhead":
        overhead(args.rounds, args.lambda_calls, args.chain_calls)
    elif args.cmd == "memory":
        memory()
    elif args.cmd == "instructions":
        instructions(args.calls)
    elif args.cmd == "instructions-child":
        instructions_child(args.variant, args.workload, args.calls)
    else:
        memory_child(args.variant, args.what)


if __name__ == "__main__":
    main()
