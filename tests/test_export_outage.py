"""Export keeps what it can: a collector that is down, refusing or hanging for up to 10 s
while the application makes 3,000 spans/s loses nothing. Every span sent arrives exactly
once (sent = received + counted drops, with no drops), for OTLP/gRPC and OTLP/HTTP, with
the receiver killed (-9) and restarted, answering UNAVAILABLE / RESOURCE_EXHAUSTED (HTTP
503 / 429), or accepting connections and never answering. The receiver is a real OTLP
server in its own process on 127.0.0.1 (``fault_receiver.py``) recording every span it
accepts to a file, so its record survives its own kill."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace

import spanhook
from fault_receiver import FaultReceiverProcess

RATE = 3_000  # spans per second
TICK = 0.01  # the producer makes RATE * TICK spans every TICK seconds
SETTLE = 1.0  # seconds of normal traffic before and after the fault


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultReceiverProcess]:
    with FaultReceiverProcess(request.param, tmp_path) as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", request.param)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint)
        yield rx
    spanhook.shutdown(timeout=2.0)


class Producer:
    """Makes spans at RATE per second from an application thread until stopped."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="app", daemon=True)

    def _run(self) -> None:
        tracer = trace.get_tracer("outage-test")
        per_tick = int(RATE * TICK)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            for _ in range(per_tick):
                span = tracer.start_span("work")
                span.end()
                self.sent.append(f"{span.get_span_context().span_id:016x}")
            next_tick += TICK
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _outage(
    receiver: FaultReceiverProcess,
    begin: Callable[[], None],
    end: Callable[[], None],
    seconds: float,
) -> None:
    spanhook.configure(exporters="otlp")
    before = spanhook.export_stats()
    with Producer() as app:
        time.sleep(SETTLE)
        begin()
        time.sleep(seconds)
        end()
        time.sleep(SETTLE)
    sent = app.sent
    assert len(sent) >= RATE * seconds * 0.8  # the load really ran (generous for CI)
    deadline = time.monotonic() + 60
    while len(receiver.received()) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert spanhook.force_flush(timeout=10.0) is True
    received = receiver.received()
    dropped = spanhook.export_stats().dropped_spans - before.dropped_spans
    repeated = {i: n for i, n in Counter(received).items() if n > 1}
    assert not repeated, f"{len(repeated)} span(s) exported more than once"
    assert dropped == 0
    assert len(sent) == len(received) + dropped
    assert set(received) == set(sent)


def test_receiver_killed_for_10_s_and_restarted_loses_nothing(
    receiver: FaultReceiverProcess,
) -> None:
    _outage(receiver, receiver.kill, receiver.start, 10.0)


def test_unavailable_then_resource_exhausted_for_10_s_loses_nothing(
    receiver: FaultReceiverProcess,
) -> None:
    def begin() -> None:
        receiver.set_fault("unavailable")  # HTTP 503
        threading.Timer(5.0, receiver.set_fault, ("resource_exhausted",)).start()  # HTTP 429

    _outage(receiver, begin, lambda: receiver.set_fault(None), 10.0)


def test_receiver_that_never_answers_for_5_s_loses_nothing(
    receiver: FaultReceiverProcess,
) -> None:
    _outage(receiver, lambda: receiver.set_fault("hang"), lambda: receiver.set_fault(None), 5.0)
