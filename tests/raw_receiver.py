"""An OTLP/gRPC trace receiver on 127.0.0.1 that keeps the raw bytes of every request, with
the 4 MiB maximum receive size of gRPC servers and of the Collector's OTLP receiver set
explicitly: a request over it is rejected (RESOURCE_EXHAUSTED), as the Collector would."""

from __future__ import annotations

import threading
import time

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collector_harness import ReceivedSpan, attributes_to_dict
from serving import Served, start_grpc

MAX_RECEIVE_BYTES = 4 * 1024 * 1024
_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class RawGrpcReceiver(Served):
    def __init__(self, max_receive_bytes: int = MAX_RECEIVE_BYTES) -> None:
        self.max_receive_bytes = max_receive_bytes
        self.raw: list[bytes] = []
        self._cond = threading.Condition()
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._cond:
            self.raw.append(request)
            self._cond.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse().SerializeToString()

    def start(self) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=lambda data: data,  # keep the bytes as they arrived
            response_serializer=lambda data: data,
        )
        self._server, self.port = start_grpc(
            lambda server: server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(_SERVICE, {"Export": handler}),)
            ),
            options=[("grpc.max_receive_message_length", self.max_receive_bytes)],
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None

    def spans(self) -> list[ReceivedSpan]:
        with self._cond:
            raw = list(self.raw)
        out: list[ReceivedSpan] = []
        for data in raw:
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(data)
            for resource_spans in request.resource_spans:
                resource = attributes_to_dict(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    out.extend(ReceivedSpan(resource, span) for span in scope_spans.spans)
        return out

    def wait_for_bytes(self, min_spans: int, timeout: float = 10.0) -> bytes:
        """All bytes received once at least ``min_spans`` spans arrived (TimeoutError)."""
        deadline = time.monotonic() + timeout
        while len(self.spans()) < min_spans:
            if time.monotonic() > deadline:
                raise TimeoutError(f"got {len(self.spans())} of {min_spans} spans in {timeout} s")
            with self._cond:
                self._cond.wait(0.05)
        with self._cond:
            return b"".join(self.raw)
