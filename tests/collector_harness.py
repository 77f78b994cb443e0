"""Test helpers for OTLP export: real Collector / Jaeger processes and in-process receivers.

Nothing in here is a test. Import it from tests (``from collector_harness import ...``;
pytest puts ``tests/`` on ``sys.path``).

* :class:`GrpcTraceReceiver` / :class:`HttpTraceReceiver`: minimal OTLP trace receivers on
  127.0.0.1 (gRPC ``TraceService/Export`` and HTTP ``POST /v1/traces`` with protobuf bodies)
  that record every ``ExportTraceServiceRequest``. They need no binaries.
* :func:`run_collector` / :func:`run_jaeger`: start the binaries built by
  ``scripts/build-collector.sh`` / ``scripts/build-jaeger.sh`` on free 127.0.0.1 ports.
  Locate them with :func:`collector_binary` / :func:`jaeger_binary` and guard with
  :func:`require_binary` (skip locally, fail when ``CI`` is set).
* :func:`jaeger_services` / :func:`jaeger_traces`: Jaeger's HTTP query API (``/api/...``).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import random
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TypeVar

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from serving import QuietHandler, Served, serve_in_thread, start_grpc, stop_serving

__all__ = [
    "COLLECTOR_CONFIG",
    "JAEGER_TEST_CONFIG",
    "REPO_ROOT",
    "CollectorProcess",
    "GrpcTraceReceiver",
    "HttpTraceReceiver",
    "JaegerProcess",
    "ManagedProcess",
    "ReceivedExport",
    "ReceivedSpan",
    "TraceReceiver",
    "any_value_to_python",
    "attributes_to_dict",
    "collector_binary",
    "free_port",
    "jaeger_binary",
    "jaeger_services",
    "jaeger_traces",
    "require_binary",
    "run_collector",
    "run_jaeger",
    "wait_for_port",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTOR_CONFIG = REPO_ROOT / "collector-config.yaml"
JAEGER_TEST_CONFIG = REPO_ROOT / "tests" / "fixtures" / "jaeger-test-config.yaml"
BUILD_COLLECTOR_SCRIPT = REPO_ROOT / "scripts" / "build-collector.sh"
BUILD_JAEGER_SCRIPT = REPO_ROOT / "scripts" / "build-jaeger.sh"
COLLECTOR_MANIFEST = REPO_ROOT / "scripts" / "otelcol-builder.yaml"

# Passed to the collector as a second --config (merged over collector-config.yaml) through
# the env provider: turns off its internal metrics, whose Prometheus endpoint is the fixed
# 127.0.0.1:8888 and would collide between concurrent collectors.
_COLLECTOR_TEST_OVERRIDES_ENV = "SPANHOOK_OTELCOL_TEST_OVERRIDES"
_COLLECTOR_TEST_OVERRIDES = "service: {telemetry: {metrics: {level: none}}}"

T = TypeVar("T")


# --------------------------------------------------------------------------- ports / waiting


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; a common default
    elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


_EPHEMERAL = _ephemeral_range()
# Ports handed out by this process: never handed out twice, even before anything binds them.
_HANDED_OUT: set[int] = set()
_PORT_RANDOM = random.Random(os.getpid() ^ time.monotonic_ns())


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and that the kernel will not give
    to an outgoing connection.

    A port from ``bind(0)`` comes from the ephemeral range, the same range every outgoing
    connection's local port comes from: between picking it and a child process binding it
    (or rebinding it after a restart), a connection from any process can take it, and the
    child fails with "address already in use". Ports are therefore drawn from below that
    range (10000 up to its start), at random, never twice in one process, and checked by
    binding without ``SO_REUSEADDR`` (so a port still in TIME_WAIT is not taken either).
    """
    low, high = 10000, _EPHEMERAL[0]
    if high - low < 1000:  # an unusual kernel setting: use the range above it instead
        low, high = _EPHEMERAL[1] + 1, 65536
    for _ in range(200):
        port = _PORT_RANDOM.randrange(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free 127.0.0.1 port in {low}..{high - 1} after 200 tries")


def wait_for_port(
    port: int,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
    alive: Callable[[], bool] | None = None,
) -> None:
    """Wait until ``host:port`` accepts TCP connections.

    ``alive`` (e.g. "the process is still running") is checked between attempts; when it
    returns False we stop waiting early. Raises :class:`TimeoutError` / :class:`RuntimeError`.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"process exited before {host}:{port} accepted connections")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not accept connections within {timeout} s")
        time.sleep(0.05)


def wait_until(
    probe: Callable[[], T | None],
    timeout: float = 10.0,
    interval: float = 0.1,
    message: str = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy and return that; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout} s (last result: {result!r})")
        time.sleep(interval)


# --------------------------------------------------------------------------- binaries


def _cache_dir() -> Path:
    configured = os.environ.get("SPANHOOK_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "spanhook"


def _script_setting(script: Path, name: str) -> str:
    """Read ``NAME="value"`` from one of the build scripts (the single source of the pins)."""
    match = re.search(rf'^{name}="([^"]+)"', script.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{name}=... not found in {script}")
    return match.group(1)


def _executable(path: Path) -> str | None:
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def collector_binary() -> str | None:
    """Path of the collector built by ``scripts/build-collector.sh``, or None if not built.

    ``SPANHOOK_OTELCOL_BIN`` overrides the lookup (None if it does not name an executable).
    """
    override = os.environ.get("SPANHOOK_OTELCOL_BIN")
    if override:
        return _executable(Path(override))
    version = _script_setting(BUILD_COLLECTOR_SCRIPT, "OTELCOL_VERSION")
    manifest_hash = hashlib.sha256(COLLECTOR_MANIFEST.read_bytes()).hexdigest()[:12]
    return _executable(
        _cache_dir() / f"otelcol-spanhook-{version}-{manifest_hash}" / "otelcol-spanhook"
    )


def jaeger_binary() -> str | None:
    """Path of Jaeger v2 built by ``scripts/build-jaeger.sh``, or None if not built.

    ``SPANHOOK_JAEGER_BIN`` overrides the lookup (None if it does not name an executable).
    """
    override = os.environ.get("SPANHOOK_JAEGER_BIN")
    if override:
        return _executable(Path(override))
    version = _script_setting(BUILD_JAEGER_SCRIPT, "JAEGER_VERSION")
    return _executable(_cache_dir() / f"jaeger-{version}" / "jaeger")


def require_binary(path_or_none: str | None, what: str) -> str:
    """Return the path, or skip the test (fail it when ``CI`` is set) if it is missing.

    ``what`` names the binary ("collector", "jaeger", ...); the message says which build
    script to run.
    """
    if path_or_none:
        return path_or_none
    if "jaeger" in what.lower():
        script, env_var = "scripts/build-jaeger.sh", "SPANHOOK_JAEGER_BIN"
    else:
        script, env_var = "scripts/build-collector.sh", "SPANHOOK_OTELCOL_BIN"
    message = (
        f"{what} binary not found: run `bash {script}` (needs Go) or set {env_var} "
        f"to an existing binary"
    )
    fail: Callable[[str], NoReturn] = pytest.fail if os.environ.get("CI") else pytest.skip
    fail(message)


# --------------------------------------------------------------------------- processes


class ManagedProcess:
    """A child process whose combined stdout/stderr is collected in the background."""

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.args = list(args)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            self.args,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self._lines.append(line)

    def output(self) -> str:
        """Everything the process printed so far."""
        with self._lock:
            return "".join(self._lines)

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` appears in the output; returns the output."""
        return wait_until(
            lambda: self.output() if text in self.output() else None,
            timeout=timeout,
            message=f"{text!r} in {self.name} output",
        )

    def is_running(self) -> bool:
        return self.process.poll() is None

    def wait_for_port(self, port: int, timeout: float = 30.0) -> None:
        try:
            wait_for_port(port, timeout=timeout, alive=self.is_running)
        except (TimeoutError, RuntimeError) as exc:
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start listening on 127.0.0.1:{port} "
                f"({exc}); exit code {self.process.returncode}; output:\n{self.output()}"
            ) from exc

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class CollectorProcess:
    """A running collector (see :func:`run_collector`)."""

    grpc_port: int
    http_port: int
    jaeger_endpoint: str
    process: ManagedProcess

    @property
    def grpc_endpoint(self) -> str:
        """For ``OTLPSpanExporter(endpoint=..., insecure=True)`` (gRPC)."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_traces_url(self) -> str:
        """For the OTLP/HTTP span exporter's ``endpoint``."""
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    def output(self) -> str:
        return self.process.output()


@dataclass
class JaegerProcess:
    """A running Jaeger v2 all-in-one (see :func:`run_jaeger`)."""

    otlp_grpc_port: int
    otlp_http_port: int
    query_port: int
    query_grpc_port: int
    process: ManagedProcess

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.otlp_grpc_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def output(self) -> str:
        return self.process.output()


def _child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # Do not let the test runner's own OTel settings leak into the child processes.
    for key in list(env):
        if key.startswith("OTEL_"):
            del env[key]
    env.update(overrides)
    return env


@contextlib.contextmanager
def run_collector(
    grpc_port: int | None = None,
    http_port: int | None = None,
    jaeger_endpoint: str = "127.0.0.1:4317",
    *,
    binary: str | None = None,
    config: Path = COLLECTOR_CONFIG,
    startup_timeout: float = 30.0,
    metrics_endpoint: str | None = None,
) -> Iterator[CollectorProcess]:
    """Run the built collector with the repository's ``collector-config.yaml``.

    The OTLP receiver listens on 127.0.0.1 (``grpc_port``/``http_port``, free ports by
    default); the ``otlp_grpc/jaeger`` exporter sends to ``jaeger_endpoint`` ("host:port",
    plaintext gRPC), the metrics pipeline's OTLP/HTTP exporter to ``metrics_endpoint`` (a
    full URL). Without ``binary`` the cached build is used (skip/fail if missing).
    """
    binary = binary or require_binary(collector_binary(), "collector")
    grpc_port = grpc_port or free_port()
    http_port = http_port or free_port()
    env = _child_env(
        {
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
            "JAEGER_OTLP_ENDPOINT": jaeger_endpoint,
            **({"METRICS_OTLP_ENDPOINT": metrics_endpoint} if metrics_endpoint else {}),
            _COLLECTOR_TEST_OVERRIDES_ENV: _COLLECTOR_TEST_OVERRIDES,
        }
    )
    args = [binary, f"--config={config}", f"--config=env:{_COLLECTOR_TEST_OVERRIDES_ENV}"]
    proc = ManagedProcess("otelcol", args, env)
    try:
        proc.wait_for_port(grpc_port, timeout=startup_timeout)
        proc.wait_for_port(http_port, timeout=startup_timeout)
        yield CollectorProcess(grpc_port, http_port, jaeger_endpoint, proc)
    finally:
        proc.stop()


@contextlib.contextmanager
def run_jaeger(
    otlp_grpc_port: int | None = None,
    query_port: int | None = None,
    *,
    otlp_http_port: int | None = None,
    query_grpc_port: int | None = None,
    binary: str | None = None,
    config: Path = JAEGER_TEST_CONFIG,
    startup_timeout: float = 30.0,
) -> Iterator[JaegerProcess]:
    """Run Jaeger v2 (in-memory storage) with ``tests/fixtures/jaeger-test-config.yaml``.

    Listens only on 127.0.0.1: OTLP gRPC ``otlp_grpc_port`` / HTTP ``otlp_http_port`` in,
    HTTP query API ``query_port`` (``/api/...``) and gRPC query ``query_grpc_port``; free
    ports by default.
    """
    binary = binary or require_binary(jaeger_binary(), "jaeger")
    otlp_grpc_port = otlp_grpc_port or free_port()
    otlp_http_port = otlp_http_port or free_port()
    query_port = query_port or free_port()
    query_grpc_port = query_grpc_port or free_port()
    env = _child_env(
        {
            "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{otlp_grpc_port}",
            "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{otlp_http_port}",
            "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{query_port}",
            "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{query_grpc_port}",
        }
    )
    proc = ManagedProcess("jaeger", [binary, f"--config={config}"], env)
    try:
        proc.wait_for_port(otlp_grpc_port, timeout=startup_timeout)
        proc.wait_for_port(query_port, timeout=startup_timeout)
        yield JaegerProcess(otlp_grpc_port, otlp_http_port, query_port, query_grpc_port, proc)
    finally:
        proc.stop()


# --------------------------------------------------------------------------- Jaeger query API


def _jaeger_get(query_port: int, path: str, params: Mapping[str, str] | None = None) -> Any:
    url = f"http://127.0.0.1:{query_port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def jaeger_services(query_port: int) -> list[str]:
    """Service names Jaeger knows (``GET /api/services``)."""
    data = _jaeger_get(query_port, "/api/services").get("data") or []
    return [str(name) for name in data]


def jaeger_traces(
    query_port: int, service: str, *, limit: int = 100, lookback: str = "1h"
) -> list[dict[str, Any]]:
    """Traces of ``service`` (``GET /api/traces?service=...``), Jaeger's JSON trace model.

    Each trace has ``traceID``, ``spans`` (``spanID``, ``operationName``, ``references``
    with ``refType`` CHILD_OF, ``tags``, ``processID``) and ``processes``
    (``{"p1": {"serviceName": ..., "tags": [...]}}``).
    """
    params = {"service": service, "limit": str(limit), "lookback": lookback}
    data = _jaeger_get(query_port, "/api/traces", params).get("data") or []
    return [dict(trace) for trace in data]


# --------------------------------------------------------------------------- OTLP receivers


def any_value_to_python(value: AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` into plain Python (str/bool/int/float/bytes/list/dict)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_to_dict(attributes: Sequence[KeyValue] | Any) -> dict[str, Any]:
    """Convert repeated OTLP ``KeyValue`` (span/resource/event attributes) into a dict."""
    return {kv.key: any_value_to_python(kv.value) for kv in attributes}


@dataclass(frozen=True)
class ReceivedExport:
    """One export call as received: the decoded request plus transport details."""

    request: trace_service_pb2.ExportTraceServiceRequest
    transport: str  # "grpc" or "http"
    headers: dict[str, str]  # gRPC metadata or HTTP headers, keys lower-cased
    received_at: float = field(default_factory=time.time)


class ReceivedSpan(NamedTuple):
    """A span flattened out of a request: unpacks as ``(resource_attributes, span_proto)``."""

    resource: dict[str, Any]
    span: Span

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes_to_dict(self.span.attributes)

    @property
    def trace_id(self) -> str:
        """Lower-case hex, as in ``opentelemetry.trace.format_trace_id``."""
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> str:
        """Hex parent span id, "" for a root span."""
        return self.span.parent_span_id.hex()


class TraceReceiver(Served):
    """Common storage and waiting for the OTLP trace receivers.

    Use as a context manager (or call :meth:`start` / :meth:`stop`). ``spans()`` returns
    :class:`ReceivedSpan` named tuples ``(resource_attributes, span_proto)``.
    """

    def __init__(self) -> None:
        self._exports: list[ReceivedExport] = []
        self._cond = threading.Condition()
        self.port = 0

    def _record(self, export: ReceivedExport) -> None:
        with self._cond:
            self._exports.append(export)
            self._cond.notify_all()

    @property
    def exports(self) -> list[ReceivedExport]:
        with self._cond:
            return list(self._exports)

    @property
    def requests(self) -> list[trace_service_pb2.ExportTraceServiceRequest]:
        return [export.request for export in self.exports]

    def clear(self) -> None:
        with self._cond:
            self._exports.clear()

    @staticmethod
    def _flatten(exports: Sequence[ReceivedExport]) -> list[ReceivedSpan]:
        return [
            ReceivedSpan(attributes_to_dict(resource_spans.resource.attributes), span)
            for export in exports
            for resource_spans in export.request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def spans_by_scope(self) -> dict[str, list[ReceivedSpan]]:
        """Spans grouped by instrumentation scope name."""
        out: dict[str, list[ReceivedSpan]] = {}
        for export in self.exports:
            for resource_spans in export.request.resource_spans:
                resource = attributes_to_dict(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    out.setdefault(scope_spans.scope.name, []).extend(
                        ReceivedSpan(resource, span) for span in scope_spans.spans
                    )
        return out

    def spans(self) -> list[ReceivedSpan]:
        """All spans received so far, in arrival order."""
        return self._flatten(self.exports)

    def wait_for(self, n_spans: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Wait until at least ``n_spans`` spans arrived; returns all spans (TimeoutError)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                spans = self._flatten(self._exports)
                if len(spans) >= n_spans:
                    return spans
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{type(self).__name__}: got {len(spans)} of {n_spans} spans "
                        f"within {timeout} s: {[s.span.name for s in spans]}"
                    )
                self._cond.wait(remaining)


class _TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: GrpcTraceReceiver) -> None:
        self._receiver = receiver

    def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        headers = {key.lower(): str(value) for key, value in context.invocation_metadata()}
        self._receiver._record(ReceivedExport(request, "grpc", headers))
        return trace_service_pb2.ExportTraceServiceResponse()


class GrpcTraceReceiver(TraceReceiver):
    """OTLP/gRPC trace receiver (``TraceService/Export``) on 127.0.0.1, plaintext.

    ``endpoint`` ("127.0.0.1:port") suits gRPC exporters with ``insecure=True`` and the
    collector's ``JAEGER_OTLP_ENDPOINT``. gzip-compressed requests are handled by grpcio.
    """

    def __init__(self, port: int = 0, max_workers: int = 4) -> None:
        super().__init__()
        self._requested_port = port
        self._max_workers = max_workers
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        servicer = _TraceServicer(self)
        self._server, self.port = start_grpc(
            lambda server: trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
                servicer, server
            ),
            self._requested_port,
            self._max_workers,
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None


class _OtlpHttpHandler(QuietHandler):
    server: _OtlpHttpServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urllib.parse.urlsplit(self.path).path != "/v1/traces":
            self._reply(404, b"not found", "text/plain")
            return
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-protobuf":
            self._reply(415, b"only application/x-protobuf is supported", "text/plain")
            return
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding not in ("", "identity"):
                self._reply(415, f"unsupported encoding {encoding}".encode(), "text/plain")
                return
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        except Exception as exc:  # malformed input is the client's fault: 400
            self._reply(400, f"cannot decode request: {exc}".encode(), "text/plain")
            return
        headers = {key.lower(): value for key, value in self.headers.items()}
        self.server.receiver._record(ReceivedExport(request, "http", headers))
        response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self._reply(200, response, "application/x-protobuf")


class _OtlpHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], receiver: HttpTraceReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, _OtlpHttpHandler)


class HttpTraceReceiver(TraceReceiver):
    """OTLP/HTTP trace receiver on 127.0.0.1: ``POST /v1/traces``, protobuf, gzip-aware.

    ``endpoint`` is the full ``http://127.0.0.1:port/v1/traces`` URL (what the Python
    OTLP/HTTP span exporter's ``endpoint`` argument takes); ``base_url`` is without the path.
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self._requested_port = port
        self._server: _OtlpHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v1/traces"

    def start(self) -> None:
        server = _OtlpHttpServer(("127.0.0.1", self._requested_port), self)
        self.port = server.server_address[1]
        self._thread = serve_in_thread(server)
        self._server = server

    def stop(self) -> None:
        stop_serving(self._server, self._thread)
        self._server, self._thread = None, None
