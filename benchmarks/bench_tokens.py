"""Cost of delivering one streamed token to the handlers of a run.

Measured inside one open LLM run (a real span from an SDK provider with a batch processor):

- baseline: the handler's ``on_llm_new_token`` called directly, with the same keyword
  arguments the bridge passes (``token``, ``chunk``, ``run_id``, ``parent_run_id``, ``tags``);
- spanhook: ``Run.on_llm_new_token(token, chunk=chunk)``, which counts the chunk on the span
  (time to first chunk, chunk count) and dispatches to every handler in scope;
- the same with per-token span events on (``configure(token_events=True)``).

Overhead per token per handler = (spanhook - baseline) / handlers. Target: <= 1 us.

Run: ``python benchmarks/bench_tokens.py [--tokens N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import spanhook as spanhook_pkg
from spanhook.callbacks import BaseCallbackHandler
from spanhook.llms import OfflineLLM
from spanhook.runtime.run import Run
from spanhook.runtime.scope import Request
from spanhook.schema import GenerationChunk
from spanhook.tracing.settings import TracingSettings, set_settings


class NullExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class Collect(BaseCallbackHandler):
    """A typical streaming handler: keeps the tokens (e.g. to push them to a client)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


def timed_ns(fn: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - t0) / n


def interleaved(
    a: Callable[[int], None], b: Callable[[int], None], n: int, repeats: int
) -> tuple[float, float]:
    """ns per token of ``a`` and ``b`` (``fn(n)`` delivers n tokens), sampled alternately so
    both see the same machine load; the best sample of each (least disturbed by other work)."""
    a(min(n, 10_000))
    b(min(n, 10_000))
    sa, sb = [], []
    for _ in range(repeats):
        sa.append(timed_ns(a, n))
        sb.append(timed_ns(b, n))
    return min(sa), min(sb)


def open_run(handlers: list[Any]) -> Run:
    llm = OfflineLLM()
    run = llm._start("prompt", Request(callbacks=handlers), None, {})
    run.open()
    return run


def measure(handlers_n: int, tokens: int, repeats: int) -> tuple[float, float]:
    handlers = [Collect() for _ in range(handlers_n)]
    run = open_run(list(handlers))
    chunk = GenerationChunk(text=" tok")
    kw_base = {"run_id": run.run_id, "parent_run_id": run.parent_run_id, "tags": run.tags}

    def direct(n: int) -> None:
        for _ in range(n):
            for h in handlers:
                h.on_llm_new_token(" tok", chunk=chunk, **kw_base)

    def through_run(n: int) -> None:
        on_token = run.on_llm_new_token
        for _ in range(n):
            on_token(" tok", chunk=chunk)

    base, spanhook = interleaved(direct, through_run, tokens, repeats)
    for h in handlers:
        h.tokens.clear()
    run.close_ok()
    return base, spanhook


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)

    print(f"spanhook from {spanhook_pkg.__file__}")
    print(f"tokens per sample: {args.tokens}, samples: {args.repeats} (best of)")
    print(
        f"{'case':44s} {'direct':>9s} {'spanhook':>9s} {'overhead':>9s} {'per handler':>12s} {'ratio':>6s}"
    )
    for token_events in (False, True):
        set_settings(TracingSettings(token_events=token_events))
        # per-token span events accumulate on the span: fewer tokens per sample for that case
        tokens = args.tokens if not token_events else max(1000, args.tokens // 20)
        for n in (1, 2, 4):
            base, sh = measure(n, tokens, args.repeats)
            over = sh - base
            label = f"{n} handler(s), token events {'on' if token_events else 'off'}"
            print(
                f"{label:44s} {base:7.0f}ns {sh:7.0f}ns {over:7.0f}ns {over / n:10.0f}ns {sh / base:6.2f}"
            )
    set_settings(None)
    provider.shutdown()


if __name__ == "__main__":
    main()
