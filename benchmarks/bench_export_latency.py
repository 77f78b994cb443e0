"""App-call stalls caused by export: latency percentiles of a traced call at a sustained rate,
with export off and with OTLP export to a live receiver.

The call is ``LLMChain(OfflineLLM).invoke`` (chain -> llm, 2 spans), made by the application
thread at ``--rate`` calls per second (default 1,500: 3,000 spans/s) for ``--seconds`` per
round. Export encodes spans to protobuf in spanhook's worker thread, and that work holds the
GIL the application thread needs: the calls it delays show up in the tail percentiles, not
in the median. Modes, interleaved over ``--rounds`` rounds in one process (``configure()``
swaps the export between rounds):

- ``off``: ``spanhook.configure(exporters="none")``: the same SDK spans, no export (baseline);
- ``otlp batch N``: OTLP/gRPC to a real receiver in its own process on 127.0.0.1
  (``tests/fault_receiver.py``), ``max_export_batch_size=N``.

Prints p50 / p99 / p99.9 / max per mode over all rounds and the export-caused addition
(mode - off) at each percentile.

Run from the repository root:

    .venv/bin/python benchmarks/bench_export_latency.py [--rate 1500] [--seconds 5] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import spanhook
from fault_receiver import FaultReceiverProcess
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate

PERCENTILES = (50.0, 99.0, 99.9, 100.0)


def sustained(chain: LLMChain, rate: float, seconds: float) -> list[float]:
    """Call at ``rate`` per second for ``seconds``; each call's latency in ms."""
    interval = 1.0 / rate
    out: list[float] = []
    start = time.perf_counter()
    next_at = start
    i = 0
    while next_at - start < seconds:
        now = time.perf_counter()
        if now < next_at:
            time.sleep(next_at - now)
        t0 = time.perf_counter()
        chain.invoke({"q": f"q{i}"})
        out.append((time.perf_counter() - t0) * 1000)
        i += 1
        next_at += interval
    return out


def percentile(sorted_ms: list[float], p: float) -> float:
    if p >= 100:
        return sorted_ms[-1]
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p / 100))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1_500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", default="64,512", help="max_export_batch_size values")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("Answer: {q}"))
    modes = ["off", *(f"otlp batch {b}" for b in batches)]
    samples: dict[str, list[float]] = {m: [] for m in modes}
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, switch interval "
        f"{sys.getswitchinterval() * 1000:.0f} ms"
    )
    print(
        f"{args.rate:.0f} calls/s ({2 * args.rate:.0f} spans/s), {args.seconds} s x "
        f"{args.rounds} rounds per mode, interleaved"
    )
    with tempfile.TemporaryDirectory() as tmp, FaultReceiverProcess("grpc", Path(tmp)) as rx:
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = rx.endpoint
        spanhook.configure(exporters="none")
        sustained(chain, args.rate, 1.0)  # warm-up
        for _ in range(args.rounds):
            for mode in modes:
                if mode == "off":
                    spanhook.configure(exporters="none")
                else:
                    batch = int(mode.rsplit(" ", 1)[1])
                    spanhook.configure(exporters="otlp", max_export_batch_size=batch)
                samples[mode] += sustained(chain, args.rate, args.seconds)
                spanhook.force_flush(timeout=30.0)
        stats = spanhook.export_stats()
        spanhook.shutdown(timeout=2.0)
    base = sorted(samples["off"])
    head = "".join(f"{'p' + format(p, 'g'):>10}" for p in PERCENTILES)
    print(f"\n{'mode':<18}{'calls':>8}{head}   (ms)")
    for mode in modes:
        ms = sorted(samples[mode])
        row = "".join(f"{percentile(ms, p):10.3f}" for p in PERCENTILES)
        print(f"{mode:<18}{len(ms):>8}{row}")
        if mode != "off":
            add = "".join(f"{percentile(ms, p) - percentile(base, p):+10.3f}" for p in PERCENTILES)
            print(f"{'  added by export':<18}{'':>8}{add}")
            ratio = "".join(f"{percentile(ms, p) / percentile(base, p):9.2f}x" for p in PERCENTILES)
            print(f"{'  / off':<18}{'':>8}{ratio}")
    print(f"\nexported {stats.exported_spans} spans, dropped {stats.dropped_spans}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
