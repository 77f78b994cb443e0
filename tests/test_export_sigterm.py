"""SIGTERM flushes the queued spans within the shutdown budget, then the application's own
SIGTERM handler runs (or the default action ends the process) as before; the option turns
it off. A real child process killed with SIGTERM while it makes spans, a real receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector_harness import GrpcTraceReceiver, HttpTraceReceiver, TraceReceiver

APP = r"""
import os, signal, sys, time
from opentelemetry import trace
import spanhook

mode, ids_path = sys.argv[1], sys.argv[2]
if mode == "app-handler":
    def on_term(signum, frame):
        print("app handler ran", flush=True)
        sys.exit(3)
    signal.signal(signal.SIGTERM, on_term)
spanhook.configure(exporters="otlp", flush_on_sigterm=False if mode == "off-arg" else None)
handler = signal.getsignal(signal.SIGTERM)
print("handler", "default" if handler == signal.SIG_DFL else "set", flush=True)
tracer = trace.get_tracer("sigterm-test")
fd = os.open(ids_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
n = 0
while True:
    span = tracer.start_span("work")
    span.end()
    os.write(fd, f"{span.get_span_context().span_id:016x}\n".encode())
    n += 1
    if n == 200:
        print("READY", flush=True)
    time.sleep(0.001)
"""


def _start(
    mode: str, endpoint: str, protocol: str, ids: Path, env_extra: dict[str, str]
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOK_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol, **env_extra
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", APP, mode, str(ids)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip(), proc.stdout.readline().strip()]
    assert lines[1] == "READY", (lines, proc.stderr.read() if proc.poll() is not None else "")
    proc.handler_line = lines[0]  # type: ignore[attr-defined]
    return proc


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> TraceReceiver:
    return GrpcTraceReceiver() if request.param == "grpc" else HttpTraceReceiver()


def _protocol(rx: TraceReceiver) -> str:
    return "grpc" if isinstance(rx, GrpcTraceReceiver) else "http/protobuf"


@pytest.mark.parametrize("mode", ["default-action", "app-handler"])
def test_sigterm_flushes_the_last_spans_then_the_previous_handling_runs(
    receiver: TraceReceiver, tmp_path: Path, mode: str
) -> None:
    ids = tmp_path / "ids.txt"
    with receiver as rx:
        proc = _start(mode, f"http://127.0.0.1:{rx.port}", _protocol(rx), ids, {})
        assert proc.handler_line == "handler set"  # type: ignore[attr-defined]
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
        made = ids.read_text().split()
        received = {s.span_id for s in rx.spans()}
    if mode == "default-action":
        assert proc.returncode == -signal.SIGTERM, err  # ended by the signal, as before
    else:
        assert proc.returncode == 3, err  # the application's handler decided
        assert "app handler ran" in out
    missing = [i for i in made if i not in received]
    assert not missing, f"{len(missing)} of {len(made)} spans made before SIGTERM never arrived"
    assert elapsed < 10.0  # the flush is bounded by the shutdown budget (2 s); generous for CI


@pytest.mark.parametrize("how", ["off-arg", "off-env"])
def test_the_option_leaves_sigterm_alone(tmp_path: Path, how: str) -> None:
    env = {"SPANHOOK_FLUSH_ON_SIGTERM": "false"} if how == "off-env" else {}
    with HttpTraceReceiver() as rx:
        proc = _start(how, rx.base_url, "http/protobuf", tmp_path / "ids.txt", env)
        assert proc.handler_line == "handler default"  # type: ignore[attr-defined]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM


def test_a_bad_option_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import spanhook

    monkeypatch.setenv("SPANHOOK_FLUSH_ON_SIGTERM", "sometimes")
    with pytest.raises(ValueError, match="SPANHOOK_FLUSH_ON_SIGTERM='sometimes'"):
        spanhook.configure(exporters="none")
