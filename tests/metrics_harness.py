"""Test helper: a real OTLP/HTTP metrics receiver on 127.0.0.1 (nothing in here is a test).

:class:`HttpMetricsReceiver` accepts ``POST <path>`` with a protobuf
``ExportMetricsServiceRequest`` body (gzip-aware), the way Prometheus' OTLP endpoint
(``/api/v1/otlp/v1/metrics``) and the Collector's ``otlp_http`` exporter speak, and keeps
every data point it decodes as a :class:`ReceivedMetric`.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from collector_harness import attributes_to_dict
from serving import QuietHandler, Served, serve_in_thread, stop_serving

PROMETHEUS_OTLP_PATH = "/api/v1/otlp/v1/metrics"


@dataclass(frozen=True)
class ReceivedMetric:
    """One data point of one metric, flattened out of an export request."""

    resource: dict[str, Any]
    scope: str
    name: str
    unit: str
    kind: str  # "histogram", "sum", "gauge", ...
    attributes: dict[str, Any]
    point: Any  # the protobuf data point (HistogramDataPoint has count, sum, explicit_bounds)


def _flatten(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[ReceivedMetric]:
    out = []
    for rm in request.resource_metrics:
        resource = attributes_to_dict(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data") or ""
                for point in getattr(metric, kind).data_points if kind else []:
                    out.append(
                        ReceivedMetric(
                            resource,
                            sm.scope.name,
                            metric.name,
                            metric.unit,
                            kind,
                            attributes_to_dict(point.attributes),
                            point,
                        )
                    )
    return out


class _Handler(QuietHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?", 1)[0] != self.server.receiver.path:
            self._reply(404, b"not found")
            return
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        except Exception as exc:  # malformed input is the client's fault: 400
            self._reply(400, f"cannot decode request: {exc}".encode())
            return
        self.server.receiver._record(request)
        response = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        self._reply(200, response, "application/x-protobuf")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: HttpMetricsReceiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)


class HttpMetricsReceiver(Served):
    """OTLP/HTTP metrics receiver on a free 127.0.0.1 port; a context manager."""

    def __init__(self, path: str = PROMETHEUS_OTLP_PATH) -> None:
        self.path = path
        self.port = 0
        self._points: list[ReceivedMetric] = []
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The full URL exporters post to."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    def _record(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self._cond:
            self._points.extend(_flatten(request))
            self._cond.notify_all()

    def points(self) -> list[ReceivedMetric]:
        with self._cond:
            return list(self._points)

    def wait_for(
        self, done: Callable[[list[ReceivedMetric]], bool], timeout: float = 30.0
    ) -> list[ReceivedMetric]:
        """Wait until ``done(points)`` holds; returns the points (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done(self._points):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = sorted({p.name for p in self._points})
                    raise TimeoutError(f"metrics not complete within {timeout} s; got {names}")
                self._cond.wait(remaining)
            return list(self._points)

    def start(self) -> None:
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = serve_in_thread(self._server)

    def stop(self) -> None:
        stop_serving(self._server, self._thread)
        self._server, self._thread = None, None
