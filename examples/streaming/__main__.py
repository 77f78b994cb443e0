"""Streaming results to a browser: ``python -m examples.streaming``, then open the URL it prints.

Each question typed into the page runs the agent with a ``WebSocketHandler`` passed as a
request callback; the page shows the tokens as they arrive, the tool calls as they happen
and the final answer. Open it in two browsers at once: each sees only its own request.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from examples.common import add_model_arguments
from examples.streaming.app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.streaming")
    add_model_arguments(parser)
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
    print(f"Open http://{args.host}:{args.port}/ in a browser (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(args), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
