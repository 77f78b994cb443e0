"""An OTLP trace receiver to kill, restart and make fail, run as its own process.

    python tests/fault_receiver.py {grpc|http} PORT RECORD_FILE FAULT_FILE

Listens on 127.0.0.1:PORT and appends the hex span id of every span it accepts to
RECORD_FILE (one line each, one write per request, before answering), so the record
survives ``kill -9``. While FAULT_FILE exists, its content decides the answer instead:
``unavailable`` / ``resource_exhausted`` (gRPC status; HTTP 503 / 429 with
``Retry-After: 1``), or ``hang``: never answer (the request waits until the fault is
cleared and is then refused, never recorded). Prints ``READY`` once listening.

Nothing in here is a test; the export fault tests, ``benchmarks/soak.py`` and
``benchmarks/bench_export.py`` use it.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from serving import QuietHandler, start_grpc

HTTP_STATUS = {"unavailable": 503, "resource_exhausted": 429}


class Recorder:
    def __init__(self, record: Path, fault: Path) -> None:
        self._fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fault = fault
        self._lock = threading.Lock()

    def fault(self) -> str:
        """The current fault, waiting while it is ``hang`` (then: refuse, never record)."""
        try:
            mode = self._fault.read_text().strip()
        except FileNotFoundError:
            return ""
        if mode == "hang":
            while self._fault.exists():
                time.sleep(0.05)
            return "unavailable"
        return mode

    def record(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        ids = [
            span.span_id.hex()
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
        with self._lock:
            os.write(self._fd, "".join(f"{i}\n" for i in ids).encode())


def serve_grpc(port: int, recorder: Recorder) -> None:
    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(
            self,
            request: trace_service_pb2.ExportTraceServiceRequest,
            context: grpc.ServicerContext,
        ) -> trace_service_pb2.ExportTraceServiceResponse:
            fault = recorder.fault()
            if fault:
                context.abort(grpc.StatusCode[fault.upper()], f"fault: {fault}")
            recorder.record(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    try:
        server, _ = start_grpc(
            lambda server: trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
                Servicer(), server
            ),
            port,
            max_workers=8,
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
    except RuntimeError as e:
        raise SystemExit(str(e)) from None
    print("READY", flush=True)
    server.wait_for_termination()


def serve_http(port: int, recorder: Recorder) -> None:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = recorder.fault()
            if fault:
                self._reply(HTTP_STATUS[fault], b"fault", headers={"Retry-After": "1"})
                return
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = gzip.decompress(body)
            recorder.record(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self._reply(200, response, "application/x-protobuf")

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", port), Handler)
    print("READY", flush=True)
    server.serve_forever(poll_interval=0.1)


def main() -> None:
    protocol, port, record, fault = sys.argv[1:5]
    recorder = Recorder(Path(record), Path(fault))
    (serve_grpc if protocol == "grpc" else serve_http)(int(port), recorder)


if __name__ == "__main__":
    main()


class FaultReceiverProcess:
    """Runs this module as a child process on a fixed port; kill, restart, fault it."""

    def __init__(self, protocol: str, workdir: Path, port: int | None = None) -> None:
        import socket

        self.protocol = "grpc" if protocol == "grpc" else "http"
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        self.port = port
        self.record = workdir / f"received-{port}.txt"
        self.fault_file = workdir / f"fault-{port}.txt"
        self.proc: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                self.protocol,
                str(self.port),
                str(self.record),
                str(self.fault_file),
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until READY or exit
        if line.strip() != "READY" or time.monotonic() > deadline:
            self.kill()
            raise RuntimeError(f"fault receiver did not start on port {self.port}: {line!r}")

    def kill(self) -> None:
        """``kill -9``: no goodbye to the connected exporters."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    def set_fault(self, mode: str | None) -> None:
        if mode is None:
            self.fault_file.unlink(missing_ok=True)
        else:
            self.fault_file.write_text(mode)

    def received(self) -> list[str]:
        """Hex span ids of every span accepted so far, in arrival order (repeats kept)."""
        try:
            return self.record.read_text().split()
        except FileNotFoundError:
            return []

    def __enter__(self) -> FaultReceiverProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.set_fault(None)
        self.kill()
