"""Export survives ``os.fork()`` (gunicorn/celery prefork workers): the child's spans are
exported by the child, the parent's by the parent, each exactly once. Real fork, real OTLP
receivers on 127.0.0.1, the real OTLP exporters built by ``spanhook.configure()``."""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Iterator

import pytest
from opentelemetry import trace

import spanhook
from collector_harness import GrpcTraceReceiver, HttpTraceReceiver, TraceReceiver

CHILD_SPANS = 30

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TraceReceiver]:
    rx: TraceReceiver = GrpcTraceReceiver() if request.param == "grpc" else HttpTraceReceiver()
    with rx:
        endpoint = f"http://127.0.0.1:{rx.port}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", request.param)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        yield rx
    spanhook.shutdown(timeout=2.0)


@pytest.fixture
def http_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[TraceReceiver]:
    with HttpTraceReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{rx.port}")
        yield rx
    spanhook.shutdown(timeout=2.0)


def _fork() -> int:
    with warnings.catch_warnings():  # pytest and the receiver run threads: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _child(write_fd: int) -> None:
    """Runs in the forked child: make spans, flush, report, leave without pytest's exit."""
    code = 1
    try:
        tracer = trace.get_tracer("fork-test")
        for i in range(CHILD_SPANS):
            tracer.start_span(f"child-{i}").end()
        flushed = spanhook.force_flush(timeout=10.0)
        stats = spanhook.export_stats()
        os.write(
            write_fd,
            json.dumps(
                {"flushed": flushed, "exported": stats.exported_spans, "pid": os.getpid()}
            ).encode(),
        )
        code = 0
    finally:
        os._exit(code)


def test_child_and_parent_each_export_their_own_spans_once(receiver: TraceReceiver) -> None:
    spanhook.configure(exporters="otlp")
    tracer = trace.get_tracer("fork-test")
    tracer.start_span("parent-sent").end()
    assert spanhook.force_flush(timeout=10.0) is True
    sent_before = spanhook.export_stats().exported_spans
    # Still queued at the fork (the worker waits up to 0.5 s for a batch): the parent must
    # send it, and the child must not send a copy.
    tracer.start_span("parent-queued-at-fork").end()

    read_fd, write_fd = os.pipe()
    pid = _fork()
    if pid == 0:
        os.close(read_fd)
        _child(write_fd)
    os.close(write_fd)
    tracer.start_span("parent-after-fork").end()
    with os.fdopen(read_fd) as f:
        report = json.loads(f.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report
    assert report == {"flushed": True, "exported": CHILD_SPANS, "pid": pid}

    assert spanhook.force_flush(timeout=10.0) is True
    spans = receiver.wait_for(CHILD_SPANS + 3)
    names = Counter(s.span.name for s in spans)
    assert names == Counter(
        {"parent-sent": 1, "parent-queued-at-fork": 1, "parent-after-fork": 1}
        | {f"child-{i}": 1 for i in range(CHILD_SPANS)}
    )
    # The parent's counters are its own: the child's exports did not add to them.
    assert spanhook.export_stats().exported_spans - sent_before == 2


def test_a_child_forked_while_the_worker_exports_still_exports(
    http_receiver: TraceReceiver,
) -> None:
    """Fork while the parent's worker is busy (holding its locks): the child gets fresh ones.

    Over HTTP only: gRPC's own fork handlers are skipped while another thread is inside a
    gRPC call ("Other threads are currently calling into gRPC, skipping fork() handlers"),
    after which the child's channel may hang or crash; gRPC supports fork only with no RPC in
    flight, which prefork servers give it (they fork before serving)."""
    spanhook.configure(exporters="otlp", max_export_batch_size=64)
    tracer = trace.get_tracer("fork-test")
    for i in range(2_000):
        tracer.start_span(f"parent-{i}").end()
    read_fd, write_fd = os.pipe()
    pid = _fork()
    if pid == 0:
        os.close(read_fd)
        _child(write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        report = json.loads(f.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report
    assert report["flushed"] is True and report["exported"] == CHILD_SPANS
    assert spanhook.force_flush(timeout=10.0) is True
    spans = http_receiver.wait_for(2_000 + CHILD_SPANS)
    names = Counter(s.span.name for s in spans)
    assert len(spans) == 2_000 + CHILD_SPANS
    assert all(count == 1 for count in names.values())
    assert sum(1 for n in names if n.startswith("child-")) == CHILD_SPANS


def test_traces_held_by_keep_ratio_at_the_fork_stay_the_parents(receiver: TraceReceiver) -> None:
    spanhook.configure(exporters="otlp", keep_ratio=1.0)
    tracer = trace.get_tracer("fork-test")
    with tracer.start_as_current_span("parent-root"):
        tracer.start_span("parent-child").end()  # held until its root ends
        read_fd, write_fd = os.pipe()
        pid = _fork()
        if pid == 0:
            os.close(read_fd)
            _child(write_fd)  # makes root spans of its own, flushes, exits
        os.close(write_fd)
        with os.fdopen(read_fd) as f:
            report = json.loads(f.read() or "{}")
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report
    assert report["flushed"] is True and report["exported"] == CHILD_SPANS
    assert spanhook.force_flush(timeout=10.0) is True
    spans = receiver.wait_for(CHILD_SPANS + 2)
    names = Counter(s.span.name for s in spans)
    assert names["parent-child"] == 1 and names["parent-root"] == 1
    assert len(spans) == CHILD_SPANS + 2
