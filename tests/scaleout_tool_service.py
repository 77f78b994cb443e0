"""The tool service of the scale-out tests: a second app process in every trace.

``POST /tool`` (JSON body ``{"kind": ..., "query": ...}``) continues the caller's trace
from the request headers and runs a spanhook tool, so its span is a child of the caller's
span in another process. ``kind`` ``remote_error``: the tool fails (its span has status
ERROR) and the reply is 503; ``slow``: the tool sleeps ``SCALEOUT_SLOW_SECONDS`` first.
Spans go out through spanhook's OTLP export (``OTEL_EXPORTER_OTLP_ENDPOINT``); each one is
also recorded in memory so the test knows exactly what this process sent.

Prints ``PORT <n>`` once listening on 127.0.0.1. Reads commands on stdin: ``flush``
flushes the export and prints ``SPANS <json>`` (trace id -> span ids sent since the
last ``flush``). Shuts down (flushing its spans) when stdin is closed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

import spanhook
from spanhook.tools import Tool

SLOW_SECONDS = float(os.environ.get("SCALEOUT_SLOW_SECONDS", "1.0"))


def lookup(request: str) -> str:
    body = json.loads(request)
    if body["kind"] == "remote_error":
        raise RuntimeError(f"lookup failed for {body['query']!r}")
    if body["kind"] == "slow":
        time.sleep(SLOW_SECONDS)
    return f"result for {body['query']}"


LOOKUP = Tool(name="lookup", func=lookup, description="looks things up")


class ToolHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        status, answer = 200, ""
        with spanhook.continue_trace(self.headers):
            try:
                answer = LOOKUP.run(request)
            except RuntimeError as exc:
                status, answer = 503, str(exc)
        body = answer.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def sent_spans(recorder: InMemorySpanExporter) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for span in recorder.get_finished_spans():
        ctx = span.get_span_context()
        assert ctx is not None
        out.setdefault(format_trace_id(ctx.trace_id), []).append(format_span_id(ctx.span_id))
    recorder.clear()
    return out


def main() -> int:
    recorder = InMemorySpanExporter()
    spanhook.configure(service_name="tool-service", exporters=["otlp", recorder])
    server = ThreadingHTTPServer(("127.0.0.1", 0), ToolHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    print(f"PORT {server.server_address[1]}", flush=True)
    for line in sys.stdin:
        if line.strip() == "flush":
            spanhook.force_flush(timeout=10.0)
            print(f"SPANS {json.dumps(sent_spans(recorder))}", flush=True)
    server.shutdown()
    server.server_close()
    spanhook.shutdown(timeout=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
