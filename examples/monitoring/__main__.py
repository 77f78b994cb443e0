"""Monitoring: one ``MonitorHandler`` measures a batch of agent requests and exports OTel
metrics named as the GenAI semantic conventions name them.

    python -m examples.monitoring                        # summary + metrics on the console
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 python -m examples.monitoring

With an OTLP endpoint the metrics (and the traces) also go to the Collector, which sends
the metrics on to Prometheus and the traces to Jaeger (``docker compose up -d``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

import spanhook
from examples.common import add_model_arguments, make_model
from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.callbacks import GenAIMetrics, MonitorHandler
from spanhook.callbacks.monitor import RunRecord
from spanhook.tools import Tool

QUESTIONS = [
    "What is 12 * (3 + 4)?",
    "What is 2 ** 10?",
    "What is 7 / 0?",  # the calculator raises ZeroDivisionError: counted as an error
    "What is 1.5 * 4?",
    "What is 100 - 58?",
    "What is 3 * (2 + 5)?",
]


def otlp_metric_exporter() -> MetricExporter:
    """The OTLP metric exporter the standard OTEL_EXPORTER_OTLP_* variables ask for."""
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpOTLPMetricExporter,
    )

    return HttpOTLPMetricExporter()


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (inclusive method: p50 of one value is that value)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def per_kind_summary(records: list[RunRecord]) -> str:
    """count, errors, p50/p95 duration and peak memory per run kind."""
    header = ("kind", "count", "errors", "p50 ms", "p95 ms", "peak alloc KiB", "max RSS MiB")
    rows = [header]
    for kind in dict.fromkeys(r.kind for r in records):  # in order of first finish
        mine = [r for r in records if r.kind == kind]
        durations = sorted(r.duration_s * 1e3 for r in mine)
        peak = max((r.peak_alloc_bytes or 0) for r in mine)
        rss = max(max(r.rss_start_bytes or 0, r.rss_end_bytes or 0) for r in mine)
        rows.append(
            (
                kind,
                str(len(mine)),
                str(sum(not r.ok for r in mine)),
                f"{percentile(durations, 50):.2f}",
                f"{percentile(durations, 95):.2f}",
                f"{peak / 1024:.1f}",
                f"{rss / 2**20:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.monitoring")
    add_model_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3, help="how many times to ask each question")
    parser.add_argument(
        "--no-console-metrics", action="store_true", help="do not print the metrics as JSON"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    service = os.environ.get("OTEL_SERVICE_NAME") or "spanhook-monitoring-example"
    exporting = bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )
    # The application owns the OTel SDK set-up: where the metrics go and how often.
    exporters: list[MetricExporter] = []
    if not args.no_console_metrics:
        exporters.append(ConsoleMetricExporter(out=sys.stdout))
    if exporting:
        exporters.append(otlp_metric_exporter())
        spanhook.configure(service_name=service)  # the traces go to the same Collector
    readers: list[MetricReader] = [
        PeriodicExportingMetricReader(e, export_interval_millis=60_000) for e in exporters
    ]
    meter_provider = MeterProvider(
        metric_readers=readers, resource=Resource.create({"service.name": service})
    )

    # Constructor callbacks are local to their object, so the monitor goes on each object
    # whose runs it should measure: the agent, its model and its tool.
    monitor = MonitorHandler(trace_memory=True, metrics=GenAIMetrics(meter_provider))
    calculator = calculator_tool()
    agent = AgentExecutor(
        llm=make_model(args, callbacks=[monitor]),
        tools=[Tool(calculator.name, calculator.func, calculator.description, callbacks=[monitor])],
        callbacks=[monitor],
        name="math-agent",
    )
    questions = QUESTIONS * args.repeat
    try:
        results = agent.batch(questions, max_concurrency=4, return_exceptions=True)
        for question, result in list(zip(questions, results, strict=True))[: len(QUESTIONS)]:
            if isinstance(result, BaseException):
                answer = f"failed: {type(result).__name__}: {result}"
            else:
                answer = result["output"] if isinstance(result, dict) else result
            print(f"{question:<32} {answer}")
        print(f"\n{len(questions)} requests, per run kind:")
        print(per_kind_summary(monitor.records()))
        print("\nper run kind and name:")
        print(monitor.summary())
        print()
        sys.stdout.flush()
    finally:
        meter_provider.shutdown()  # collects and exports the metrics one last time
        monitor.close()
        if exporting:
            spanhook.shutdown(timeout=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
