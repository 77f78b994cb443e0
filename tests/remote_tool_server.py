"""A tool service in its own process, for tests/test_propagation.py.

``POST /lookup`` (body: the query) continues the caller's trace from the request headers
and runs a spanhook chain, so the chain's span is a child of the caller's span. Spans are
exported with ``spanhook.configure()`` from the OTEL_* variables the parent passes.

Prints ``PORT <n>`` once listening on 127.0.0.1; shuts down (flushing its spans) when its
stdin is closed.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import baggage

import spanhook
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate


class LookupHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        query = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with spanhook.continue_trace(self.headers):
            user = baggage.get_baggage("user.id")
            chain = LLMChain(
                llm=OfflineLLM(),
                prompt=PromptTemplate.from_template("Remote lookup: {query}"),
                name="remote-lookup",
            )
            answer = chain.run(query=query, metadata={"user_id": str(user)})
        body = answer.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    spanhook.configure(exporters="otlp")
    server = ThreadingHTTPServer(("127.0.0.1", 0), LookupHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    print(f"PORT {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.shutdown()
    server.server_close()
    spanhook.shutdown(timeout=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
