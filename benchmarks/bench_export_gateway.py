"""spanhook's exporter settings for a gateway Collector: delivered spans/s, bytes on the wire
and the application process's CPU per span, with and without gzip, over OTLP/gRPC and
OTLP/HTTP, into the real Collector built by ``scripts/build-collector.sh`` running this
repository's ``collector-config.yaml``.

Path: ``LLMChain(OfflineLLM)`` runs (2 spans each, content capture on, so spans carry the
prompt and answer) -> ``spanhook.configure(exporters="otlp")`` -> a byte-counting TCP relay
-> the Collector -> a real OTLP/gRPC receiver standing in for Jaeger
(``tests/fault_receiver.py``). Each process runs on its own (relay, Collector and
receiver are child processes). For each mode the runs are made as fast as possible, then the
time until the receiver has every span is taken: spans/s is end-to-end delivery. Bytes are
what spanhook sent to the Collector (request bodies, headers and protocol framing).

Run from the repository root (needs the Collector binary):

    .venv/bin/python benchmarks/bench_export_gateway.py [--spans 40000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import spanhook
from collector_harness import free_port, run_collector
from fault_receiver import FaultReceiverProcess
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate

RELAY = r"""
import asyncio, sys
total = 0
async def pipe(reader, writer, count):
    global total
    try:
        while data := await reader.read(65536):
            if count:
                total += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
async def handle(reader, writer):
    up_r, up_w = await asyncio.open_connection("127.0.0.1", int(sys.argv[1]))
    await asyncio.gather(pipe(reader, up_w, True), pipe(up_r, writer, False))
async def control():
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        print(total, flush=True)
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await control()
asyncio.run(main())
"""


class Relay:
    """Counts the bytes sent to ``port`` through it (a child process)."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RELAY, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def sent(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def one(
    protocol: str,
    compression: str,
    batch: int,
    spans: int,
    relay: Relay,
    rx: FaultReceiverProcess,
    chain: LLMChain,
) -> tuple[float, float, float]:
    """spans/s delivered, bytes/span sent, app-process CPU us/span."""
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{relay.port}"
    os.environ.pop("OTEL_EXPORTER_OTLP_COMPRESSION", None)
    if compression != "none":
        os.environ["OTEL_EXPORTER_OTLP_COMPRESSION"] = compression
    spanhook.configure(exporters="otlp", capture_content=True, max_export_batch_size=batch)
    before_rx, before_bytes = len(rx.received()), relay.sent()
    cpu0, t0 = time.process_time(), time.monotonic()
    for i in range(spans // 2):
        chain.invoke({"q": f"question number {i} about the weather in a city"})
    ok = spanhook.force_flush(timeout=120.0)
    cpu = time.process_time() - cpu0
    deadline = time.monotonic() + 120
    while len(rx.received()) - before_rx < spans and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    got = len(rx.received()) - before_rx
    if not ok or got != spans:
        print(f"  warning: {protocol}/{compression}: flush {ok}, {got} of {spans} delivered")
    time.sleep(0.3)  # the relay has counted everything once the spans are through
    sent = relay.sent() - before_bytes
    return got / elapsed, sent / spans, cpu / spans * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("Answer: {q}"))
    modes = [
        (p, c, b)
        for p in ("grpc", "http/protobuf")
        for c, b in (("none", 64), ("gzip", 64), ("gzip", 512))
    ]
    results: dict[tuple[str, str, int], list[tuple[float, float, float]]] = {m: [] for m in modes}
    with (
        tempfile.TemporaryDirectory() as tmp,
        FaultReceiverProcess("grpc", Path(tmp)) as rx,
        run_collector(
            grpc_port=free_port(), http_port=free_port(), jaeger_endpoint=f"127.0.0.1:{rx.port}"
        ) as col,
    ):
        relays = {"grpc": Relay(col.grpc_port), "http/protobuf": Relay(col.http_port)}
        try:
            one("grpc", "none", 64, 2_000, relays["grpc"], rx, chain)  # warm-up
            for _ in range(args.repeats):
                for mode in modes:
                    results[mode].append(one(*mode, args.spans, relays[mode[0]], rx, chain))
        finally:
            for relay in relays.values():
                relay.close()
        stats = spanhook.export_stats()
        spanhook.shutdown(timeout=2.0)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.spans} spans per mode")
    print(f"{'mode':<24}{'spans/s':>22}{'bytes/span':>22}{'app CPU us/span':>22}")
    for (protocol, compression, batch), rows in results.items():
        base = results[(protocol, "none", 64)]
        cells = []
        for k in range(3):
            vals = " / ".join(f"{r[k]:,.0f}" for r in rows)
            ratio = sum(r[k] for r in rows) / sum(b[k] for b in base)
            cells.append(f"{vals} ({ratio:.2f}x)")
        name = f"{protocol} {compression} {batch}"
        print(f"{name:<24}" + "".join(f"{c:>22}" for c in cells))
    print("(mode: protocol, compression, max_export_batch_size; each repeat shown; ratio")
    print(" against the same protocol without compression, batches of 64: the defaults)")
    print(f"exported {stats.exported_spans}, dropped {stats.dropped_spans}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
