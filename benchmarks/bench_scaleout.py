"""Sizing the scale-out tiers: spans/s one Collector takes in, per role.

A load generator sends pre-built OTLP/gRPC trace requests (500 spans each: 100 traces of
5 spans, 1 trace in 10 with an ERROR span, a few GenAI attributes per span) from 4
threads, over fresh trace ids every round, to one Collector at a time, all on 127.0.0.1:

  direct       no Collector: the generator straight into the null sink (its ceiling)
  plain        the project's minimal collector, collector-config.yaml (batch -> OTLP out):
               the baseline, measured in the same run
  gateway      collector-gateway.yaml: load_balancing by trace id to 2 backends, disk queue
  tailsampling collector-tailsampling.yaml (decision_wait 5 s, 10 % + errors + latency)
  chain        gateway -> 2 tail-sampling collectors

Downstream of each is a null OTLP sink (a gRPC server in a child process that answers
without decoding). The rate is spans sent / seconds from the first send until, by the
Collector's own metrics (``direct``: until every request was answered): ``plain`` / ``gateway`` delivered every span downstream
(``otelcol_exporter_sent_spans``); ``chain``: both tail-sampling collectors took every
span in; ``tailsampling``: it took every span in (``otelcol_receiver_accepted_spans``);
also printed: seconds from the first send until every trace was decided (the decision
wait is 5 s, the decision timer ticks every second: more means decisions lag). Peak RSS
is the process's VmHWM (for ``chain``: the gateway's). Rounds alternate the order of the
roles; medians are printed with ratios against ``plain``.

Needs scripts/build-collector.sh and scripts/build-scaleout-collector.sh. From the
repository root:

    .venv/bin/python benchmarks/bench_scaleout.py [--rounds 3] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS_DIR))

from collector_harness import COLLECTOR_CONFIG, collector_binary, free_port  # noqa: E402
from scaleout_harness import (  # noqa: E402
    GATEWAY_CONFIG,
    TAILSAMPLING_CONFIG,
    Service,
    collector_service,
    scaleout_collector_binary,
)

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TRACES_PER_REQUEST = 100
SPANS_PER_TRACE = 5
SENDERS = 4
ACCEPTED = "otelcol_receiver_accepted_spans"
SENT = "otelcol_exporter_sent_spans"
DECIDED = "otelcol_processor_tail_sampling_global_count_traces_sampled"
DECISION_WAIT = 5.0


@dataclass
class Result:
    rate: float  # spans/s through the role (see the module docstring)
    decided_after: float | None  # tail sampling: seconds until every trace was decided
    peak_rss_mib: float


_SINK = """
import sys
from concurrent import futures
import grpc
def export(request, context):
    return b""  # an empty ExportTraceServiceResponse
handler = grpc.method_handlers_generic_handler(
    "opentelemetry.proto.collector.trace.v1.TraceService",
    {"Export": grpc.unary_unary_rpc_method_handler(export)},
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.read()
server.stop(0)
"""


def attr(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_request(rng: random.Random) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(attr("service.name", "bench-app"))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "spanhook"
    now = time.time_ns()
    for t in range(TRACES_PER_REQUEST):
        trace_id = rng.randbytes(16)
        span_ids = [rng.randbytes(8) for _ in range(SPANS_PER_TRACE)]
        for i, span_id in enumerate(span_ids):
            span = scope.spans.add()
            span.trace_id, span.span_id = trace_id, span_id
            if i:
                span.parent_span_id = span_ids[0]
            span.name = "invoke_agent" if i == 0 else f"chat model-{i}"
            span.kind = Span.SPAN_KIND_INTERNAL
            span.start_time_unix_nano = now + i * 1000
            span.end_time_unix_nano = now + 20_000_000
            span.attributes.extend(
                [
                    attr("gen_ai.operation.name", "chat"),
                    attr("gen_ai.request.model", "offline-1"),
                    attr("gen_ai.usage.input_tokens", 120 + i),
                    attr("spanhook.run.kind", "llm"),
                ]
            )
            if t % 10 == 0 and i == SPANS_PER_TRACE - 1:
                span.status.code = Status.STATUS_CODE_ERROR
    return request.SerializeToString()


def send_all(endpoint: str, payloads: list[bytes]) -> None:
    """Send every payload once, from SENDERS threads, each with its own channel."""
    chunks = [payloads[i::SENDERS] for i in range(SENDERS)]

    def sender(chunk: list[bytes]) -> None:
        with grpc.insecure_channel(endpoint) as channel:
            export = channel.unary_unary(EXPORT)
            for payload in chunk:
                export(payload, timeout=30)

    threads = [threading.Thread(target=sender, args=(c,)) for c in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Sink:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SINK], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.endpoint = f"127.0.0.1:{int(self.process.stdout.readline())}"

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def rss(service: Service) -> float:
    """Peak resident memory (VmHWM) of the running service, MiB."""
    assert service.process is not None
    status = Path(f"/proc/{service.process.process.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def wait_for(done: Callable[[], bool], what: str, start: float) -> float:
    """Seconds from ``start`` until ``done()``."""
    while not done():
        if time.perf_counter() - start > 300:
            raise TimeoutError(f"not within 300 s: {what}")
        time.sleep(0.02)
    return time.perf_counter() - start


def measure(role: str, services: list[Service], payloads: list[bytes], port: int) -> Result:
    total = len(payloads) * TRACES_PER_REQUEST * SPANS_PER_TRACE
    traces = len(payloads) * TRACES_PER_REQUEST
    entry = services[-1]
    start = time.perf_counter()
    send_all(f"127.0.0.1:{port}", payloads)
    if role == "plain":  # delivered downstream
        seconds = wait_for(
            lambda: entry.metric(SENT, exporter="otlp_grpc/jaeger") >= total, role, start
        )
    elif role == "gateway":  # delivered to both backends
        seconds = wait_for(
            lambda: entry.metric(SENT, exporter="load_balancing") >= total, role, start
        )
    elif role == "chain":  # taken in by the two tail-sampling collectors
        tier2 = services[:-1]
        seconds = wait_for(lambda: sum(s.metric(ACCEPTED) for s in tier2) >= total, role, start)
    else:  # taken in; then every trace decided
        seconds = wait_for(lambda: entry.metric(ACCEPTED) >= total, role, start)
        decided = wait_for(lambda: entry.metric(DECIDED) >= traces, role, start)
        return Result(total / seconds, decided, rss(entry))
    return Result(total / seconds, None, rss(entry))


def tailsampling_env(endpoint: str, sink: str, queue_dir: str) -> dict[str, str]:
    return {
        "OTELCOL_OTLP_GRPC_ENDPOINT": endpoint,
        "JAEGER_OTLP_ENDPOINT": sink,
        "TAILSAMPLING_QUEUE_DIR": queue_dir,
        "TAILSAMPLING_DECISION_WAIT": "5s",
        "TAILSAMPLING_PERCENT": "10",
    }


def run_role(role: str, payloads: list[bytes], workdir: Path) -> Result:
    plain, scaleout = collector_binary(), scaleout_collector_binary()
    assert plain and scaleout, "build the collectors first (scripts/build-*.sh)"
    sinks = [Sink(), Sink()]
    services: list[Service] = []
    try:
        port = free_port()
        if role == "direct":
            start = time.perf_counter()
            send_all(sinks[0].endpoint, payloads)
            spans = len(payloads) * TRACES_PER_REQUEST * SPANS_PER_TRACE
            return Result(spans / (time.perf_counter() - start), None, 0.0)
        if role == "plain":
            env = {
                "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{port}",
                "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
                "JAEGER_OTLP_ENDPOINT": sinks[0].endpoint,
            }
            services = [collector_service("plain", plain, COLLECTOR_CONFIG, env, [port])]
        elif role == "tailsampling":
            env = tailsampling_env(f"127.0.0.1:{port}", sinks[0].endpoint, str(workdir / "ts"))
            services = [collector_service(role, scaleout, TAILSAMPLING_CONFIG, env, [port])]
        backends = [s.endpoint for s in sinks]
        if role == "chain":
            for label, sink in zip("ab", sinks, strict=True):
                ts_port = free_port()
                env = tailsampling_env(f"127.0.0.1:{ts_port}", sink.endpoint, str(workdir / label))
                services.append(
                    collector_service(f"ts-{label}", scaleout, TAILSAMPLING_CONFIG, env, [ts_port])
                )
            backends = [f"127.0.0.1:{s.ports[0]}" for s in services]
        if role in ("gateway", "chain"):
            env = {
                "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{port}",
                "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
                "TAILSAMPLING_A_ENDPOINT": backends[0],
                "TAILSAMPLING_B_ENDPOINT": backends[1],
                "GATEWAY_QUEUE_DIR": str(workdir / "gw"),
            }
            services.append(collector_service("gateway", scaleout, GATEWAY_CONFIG, env, [port]))
        for service in services:
            service.start()
        return measure(role, services, payloads, port)
    finally:
        for service in reversed(services):
            service.stop()
        for sink in sinks:
            sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="requests of 500 spans")
    args = parser.parse_args()
    roles = ["direct", "plain", "gateway", "tailsampling", "chain"]
    results: dict[str, list[Result]] = {r: [] for r in roles}
    rng = random.Random(7)
    spans = args.requests * TRACES_PER_REQUEST * SPANS_PER_TRACE
    print(f"{spans} spans per role and round, {args.rounds} rounds, {os.cpu_count()} CPUs")
    for n in range(args.rounds):
        for role in roles if n % 2 == 0 else list(reversed(roles)):
            payloads = [build_request(rng) for _ in range(args.requests)]
            with tempfile.TemporaryDirectory() as tmp:
                result = run_role(role, payloads, Path(tmp))
            results[role].append(result)
            print(f"  round {n + 1} {role:<13} {result.rate:>9.0f} spans/s", flush=True)
    base = statistics.median(r.rate for r in results["plain"])
    print("median over rounds (ratio to plain):")
    for role in roles:
        rate = statistics.median(r.rate for r in results[role])
        line = f"  {role:<13} {rate:>9.0f} spans/s {rate / base:5.2f}x"
        decided = [r.decided_after for r in results[role] if r.decided_after is not None]
        if decided:
            line += f"  (all decided after {statistics.median(decided):.1f} s)"
        if role != "direct":
            peak = statistics.median(r.peak_rss_mib for r in results[role])
            line += f"  peak RSS {peak:.0f} MiB"
        print(line)


if __name__ == "__main__":
    main()
