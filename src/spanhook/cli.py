"""The ``spanhook`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spanhook import __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="spanhook", description="LangChain-style callbacks built on OpenTelemetry."
    )
    parser.add_argument("--version", action="version", version=f"spanhook {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run an offline agent with verbose output and its span tree")
    demo.add_argument("--question", default=None, help="what to ask the agent")
    demo.add_argument(
        "--export",
        choices=["auto", "none", "console", "otlp", "otlp_proto_grpc", "otlp_proto_http"],
        default=None,
        help="export the trace (default: only when OTEL_TRACES_EXPORTER or an OTLP endpoint is set)",
    )
    demo.add_argument(
        "--langchain",
        action="store_true",
        help="run the agent as a LangGraph app traced by spanhook.langchain (needs the extra)",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from spanhook.demo import DEFAULT_QUESTION, run_demo

        return run_demo(args.question or DEFAULT_QUESTION, args.export, langchain=args.langchain)
    return 2  # pragma: no cover - argparse enforces the subcommand


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
