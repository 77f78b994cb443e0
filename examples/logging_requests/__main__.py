"""Logging requests: one ``RequestLogger`` on the chain's constructor logs every request.

    python -m examples.logging_requests                 # JSON lines on stdout
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 python -m examples.logging_requests

Each log line carries the run's ``trace_id`` and ``span_id``; with OTLP export on, open
``http://localhost:16686/trace/<trace_id>`` to see the request's trace in Jaeger.
"""

from __future__ import annotations

import argparse
import os
import sys

import spanhook
from examples.common import add_model_arguments, make_model
from spanhook.callbacks import RequestLogger, StdOutCallbackHandler
from spanhook.chains import LLMChain
from spanhook.prompts import PromptTemplate

EXPORT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.logging_requests")
    add_model_arguments(parser)
    parser.add_argument(
        "--log-file", help="append the JSON lines to this file instead of writing them to stdout"
    )
    args = parser.parse_args(argv)

    exporting = any(os.environ.get(name) for name in EXPORT_VARIABLES)
    if exporting:  # OTLP (or console) span export from the standard OTEL_* variables
        spanhook.configure(
            service_name=os.environ.get("OTEL_SERVICE_NAME") or "spanhook-logging-example"
        )

    log_file = open(args.log_file, "a", encoding="utf-8") if args.log_file else sys.stdout  # noqa: SIM115
    # Constructor callback: logs every request made to this chain, whoever makes it.
    # use_logging=False: JSON lines only (leave it on to also get stdlib logging records).
    # log_content=True: the inputs and outputs go into the log lines (never into the spans
    # unless content capture is on).
    request_logger = RequestLogger(json_stream=log_file, use_logging=False, log_content=True)
    chain = LLMChain(
        llm=make_model(args),
        prompt=PromptTemplate.from_template("1 + {number} = "),
        callbacks=[request_logger],
        name="adder",
    )
    try:
        # Request 1: only the constructor callback sees it.
        first = chain.run(number=2)
        print(f"request 1 answered {first!r}", file=sys.stderr)

        # Request 2: a request callback adds to the constructor one for this request only
        # (and, unlike it, sees the nested model run too): the transcript goes to stderr.
        second = chain.run(number=40, callbacks=[StdOutCallbackHandler(file=sys.stderr)])
        print(f"request 2 answered {second!r}", file=sys.stderr)
    finally:
        if exporting:
            spanhook.shutdown(timeout=5.0)  # flush the spans before exiting
        if log_file is not sys.stdout:
            log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
