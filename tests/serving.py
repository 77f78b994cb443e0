"""What the test servers share (nothing in here is a test): start/stop as a context manager,
a quiet HTTP/1.1 request handler, an HTTP server served from a daemon thread, and a plaintext
gRPC server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TypeVar

import grpc

_S = TypeVar("_S", bound="Served")


class Served:
    """A server that ``start()``s on entering a ``with`` block and ``stop()``s on leaving it."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive), no request log on stderr, and one way to answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def serve_in_thread(
    server: HTTPServer, poll_interval: float = 0.1, name: str = ""
) -> threading.Thread:
    """``server.serve_forever()`` on a daemon thread, started."""
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": poll_interval},
        name=name or f"test-http-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return thread


def stop_serving(server: HTTPServer | None, thread: threading.Thread | None) -> None:
    """Stop a server started with :func:`serve_in_thread` and close its socket."""
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)


def start_grpc(
    add_services: Callable[[grpc.Server], object],
    port: int = 0,
    max_workers: int = 4,
    options: Sequence[tuple[str, Any]] = (),
) -> tuple[grpc.Server, int]:
    """A started plaintext gRPC server on 127.0.0.1:``port`` (0: a free one) and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
    add_services(server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if bound == 0:
        raise RuntimeError(f"could not bind 127.0.0.1:{port}")
    server.start()
    return server, bound
