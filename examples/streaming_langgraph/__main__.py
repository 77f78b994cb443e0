"""Streaming a LangGraph agent to a browser: ``python -m examples.streaming_langgraph``,
then open the URL it prints.

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 python -m examples.streaming_langgraph

Each question runs a ``create_react_agent`` graph (offline, deterministic tool-calling model)
with a request-scoped ``WebSocketHandler``; the page shows the tokens as they arrive, the
tool calls as they happen and the final answer. With the OTLP variables set, each request's
spans (graph, nodes, model and tool runs) go out as one trace.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

import spanhook
from examples.streaming_langgraph.app import create_app

EXPORT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.streaming_langgraph")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--delay",
        type=float,
        default=0.05,
        help="seconds per token of the offline model, to watch it stream (default 0.05)",
    )
    args = parser.parse_args(argv)
    if args.delay < 0:
        parser.error("--delay must be >= 0")
    if any(os.environ.get(name) for name in EXPORT_VARIABLES):
        spanhook.configure(
            service_name=os.environ.get("OTEL_SERVICE_NAME") or "spanhook-streaming-langgraph"
        )
    print(f"Open http://{args.host}:{args.port}/ in a browser (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(args.delay), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
