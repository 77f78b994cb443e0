"""Export benchmarks: burst delivery and per-run cost with the collector up or down.

The receiver is the tests' ``GrpcTraceReceiver`` (a real OTLP/gRPC server on 127.0.0.1)
run in a child process, as a collector would be, so its decoding does not compete with the
measured application for the GIL.

(a) A 10,000-span burst (2,500 chain -> llm, tool, llm trees, five attributes per span)
    through spanhook's ``ExportProcessor`` to the live receiver, compared, in the same run
    and against the same receiver, with the SDK's ``BatchSpanProcessor`` at its default
    settings. Counts what arrived.
(b) The cost of one ``LLMChain`` run (2 spans) with ``spanhook.configure()`` exporting to a
    collector that is up, to a port with nothing listening, and to a server that accepts
    connections but never answers, against the same chain with export off (``none``).
    Modes are interleaved over several rounds; medians are reported.

Run from the repository root:

    /work/venv/bin/python benchmarks/bench_export.py
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

import spanhook
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.tracing.export import ExportProcessor

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"

BURST_SPANS = 10_000
BURST_REPEATS = 3
RUNS_PER_ROUND = 500
ROUNDS = 9


# ------------------------------------------------------------------------- receiver

_RECEIVER = """
import sys
from collector_harness import GrpcTraceReceiver
with GrpcTraceReceiver(max_workers=4) as rx:
    print("PORT", rx.port, flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            print(len(rx.spans()), flush=True)
        elif line.strip() == "clear":
            rx.clear()
            print("ok", flush=True)
"""


class Receiver:
    """A live OTLP/gRPC receiver in a child process."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RECEIVER],
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout
        line = self._out.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"receiver did not start: {line!r}")
        self.endpoint = f"127.0.0.1:{int(line.split()[1])}"

    def _ask(self, what: str) -> str:
        self._in.write(what + "\n")
        self._in.flush()
        return self._out.readline().strip()

    def count(self) -> int:
        return int(self._ask("count"))

    def clear(self) -> None:
        self._ask("clear")

    def close(self) -> None:
        self._in.close()
        self.proc.wait(10)


@contextmanager
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    try:
        yield rx
    finally:
        rx.close()


# ------------------------------------------------------------------------- (a) burst


def _burst(tp: TracerProvider) -> None:
    tracer = tp.get_tracer("bench")
    for i in range(BURST_SPANS // 4):
        with tracer.start_as_current_span(
            "chain", attributes={"spanhook.run.kind": "chain", "i": i}
        ):
            for name in ("text_completion m", "execute_tool t", "text_completion m"):
                span = tracer.start_span(
                    name,
                    attributes={
                        "spanhook.run.kind": "llm",
                        "gen_ai.operation.name": "text_completion",
                        "gen_ai.request.model": "m",
                        "gen_ai.usage.input_tokens": 100,
                        "gen_ai.usage.output_tokens": 20,
                    },
                )
                span.end()


def _settled_count(rx: Receiver, quiet: float = 0.3, limit: float = 10.0) -> int:
    """Spans received once nothing more arrived for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = rx.count()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    return last


def burst_once(rx: Receiver, make: Callable[[SpanExporter], SpanProcessor]) -> dict[str, float]:
    rx.clear()
    processor = make(OTLPSpanExporter(endpoint=rx.endpoint, insecure=True, timeout=10))
    tp = TracerProvider(resource=Resource.create({"service.name": "bench"}), shutdown_on_exit=False)
    tp.add_span_processor(processor)
    t0 = time.perf_counter()
    _burst(tp)
    emitted = time.perf_counter() - t0
    flushed = processor.force_flush(30_000)
    delivered = time.perf_counter() - t0
    received = _settled_count(rx)
    dropped = float(getattr(processor, "dropped_spans", float("nan")))
    tp.shutdown()
    return {
        "received": received,
        "emit_s": emitted,
        "delivered_s": delivered,
        "flush_ok": float(flushed),
        "dropped_counted": dropped,
    }


def bench_burst() -> list[tuple[str, dict[str, float]]]:
    makers: list[tuple[str, Callable[[SpanExporter], SpanProcessor]]] = [
        ("spanhook ExportProcessor (defaults)", lambda e: ExportProcessor(e)),
        ("SDK BatchSpanProcessor (defaults)", lambda e: BatchSpanProcessor(e)),
    ]
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in makers}
    with receiver() as rx:
        for _ in range(BURST_REPEATS):
            for name, make in makers:
                results[name].append(burst_once(rx, make))
    out = []
    for name, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        med["received_min"] = min(r["received"] for r in rows)
        med["received_max"] = max(r["received"] for r in rows)
        out.append((name, med))
    return out


# ------------------------------------------------------------------------- (b) up vs down


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _blackhole() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(srv.getsockname()[1])
    finally:
        srv.close()
        for c in conns:
            c.close()


def _time_runs(chain: LLMChain, n: int) -> tuple[float, float]:
    """(wall, CPU of the calling thread) microseconds per run."""
    t0, c0 = time.perf_counter(), time.thread_time()
    for i in range(n):
        chain.run(q=f"{i} + 1 = ")
    return (time.perf_counter() - t0) / n * 1e6, (time.thread_time() - c0) / n * 1e6


def bench_up_down() -> dict[str, tuple[float, float]]:
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{q}"))
    with receiver() as rx, _blackhole() as hung_port:
        endpoints: dict[str, str | None] = {
            "export off (none)": None,
            "collector up": rx.endpoint,
            "collector down: nothing listening": f"127.0.0.1:{_closed_port()}",
            "collector down: never answers": f"127.0.0.1:{hung_port}",
        }
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in endpoints}
        for _ in range(ROUNDS):
            for mode, endpoint in endpoints.items():
                exporters: str | list[str | SpanExporter] = (
                    "none"
                    if endpoint is None
                    else [OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=2)]
                )
                spanhook.configure(exporters=exporters, shutdown_timeout=0.3)
                _time_runs(chain, 100)  # warm up
                samples[mode].append(_time_runs(chain, RUNS_PER_ROUND))
                if endpoint == rx.endpoint:
                    spanhook.force_flush(timeout=10.0)  # outside the timed loop
        spanhook.configure(exporters="none", shutdown_timeout=0.3)
        sent_up = ROUNDS * (RUNS_PER_ROUND + 100) * 2
        print(
            f"  collector up received {rx.count()}/{sent_up} spans; spans dropped "
            f"(and counted) while down: {spanhook.export_stats().dropped_spans}"
        )
    return {
        mode: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for mode, v in samples.items()
    }


def main() -> int:
    logging.disable(logging.CRITICAL)  # the down modes log every failed batch
    for var in [v for v in os.environ if v.startswith("OTEL_")]:
        del os.environ[var]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")

    print(
        f"\n(a) burst of {BURST_SPANS} spans to a local OTLP/gRPC receiver "
        f"(median of {BURST_REPEATS})"
    )
    print(
        f"  {'processor':38} {'received':>17} {'counted drops':>13} {'emit ms':>8} "
        f"{'flush ok':>8} {'spans/s':>8}"
    )
    burst = bench_burst()
    for name, r in burst:
        rate = r["received"] / r["delivered_s"]
        print(
            f"  {name:38} {int(r['received']):>6}/{BURST_SPANS} ({int(r['received_min'])}-"
            f"{int(r['received_max'])}) {r['dropped_counted']:>6.0f} {r['emit_s'] * 1e3:>8.0f} "
            f"{'yes' if r['flush_ok'] else 'no':>8} {rate:>8.0f}"
        )
    (_, ours), (_, sdk) = burst
    print(
        f"  delivered spans, spanhook / SDK defaults: {ours['received'] / max(1, sdk['received']):.2f}x"
    )

    print(
        f"\n(b) one LLMChain run (2 spans), us/run, median of {ROUNDS} rounds x {RUNS_PER_ROUND} runs"
    )
    print("    wall = what the caller waits; thread CPU = work done on the calling thread")
    costs = bench_up_down()
    (base, base_cpu), (up, up_cpu) = costs["export off (none)"], costs["collector up"]
    print(
        f"  {'mode':36} {'wall':>8} {'vs off':>7} {'vs up':>6}   {'thread CPU':>10} {'vs off':>7} {'vs up':>6}"
    )
    for mode, (us, cpu) in costs.items():
        print(
            f"  {mode:36} {us:8.1f} {us / base:6.2f}x {us / up:5.2f}x   {cpu:10.1f} "
            f"{cpu / base_cpu:6.2f}x {cpu / up_cpu:5.2f}x"
        )
    spanhook.shutdown(timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
