"""Test helpers for the scale-out tiers: real gateway / tail-sampling Collectors and Jaeger
with Badger, run on 127.0.0.1 with the repository's own configs.

Nothing in here is a test. Every process has fixed ports and directories for its life, so
a test can stop it (SIGTERM), kill it (SIGKILL) and start it again on the same queue or
Badger directory. :class:`ScaleOutStack` wires one gateway (collector-gateway.yaml) in
front of two tail-sampling collectors (collector-tailsampling.yaml) and Jaeger
(jaeger-badger.yaml, binary from scripts/build-jaeger.sh).
"""

from __future__ import annotations

import hashlib
import os
import signal
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from collector_harness import (
    REPO_ROOT,
    ManagedProcess,
    _child_env,
    free_port,
    jaeger_binary,
    require_binary,
    wait_until,
)

GATEWAY_CONFIG = REPO_ROOT / "collector-gateway.yaml"
TAILSAMPLING_CONFIG = REPO_ROOT / "collector-tailsampling.yaml"
JAEGER_BADGER_CONFIG = REPO_ROOT / "jaeger-badger.yaml"
SCALEOUT_MANIFEST = REPO_ROOT / "scripts" / "otelcol-scaleout-builder.yaml"
BUILD_SCALEOUT_SCRIPT = REPO_ROOT / "scripts" / "build-scaleout-collector.sh"

# Merged over the repository's configs (second --config through the env provider): the
# internal metrics endpoint moves from its fixed port (which would collide between
# processes) to a free one of each collector; Jaeger gets none.
_OVERRIDES_ENV = "SPANHOOK_SCALEOUT_TEST_OVERRIDES"
_NO_METRICS = "service: {telemetry: {metrics: {level: none}}}"
_METRICS_ON = (
    "service: {telemetry: {metrics: {level: normal, readers: [{pull: {exporter: "
    "{prometheus: {host: 127.0.0.1, port: %d}}}}]}}}"
)


def scaleout_collector_binary() -> str | None:
    """The collector built by ``scripts/build-scaleout-collector.sh``, or None if not built.

    ``SPANHOOK_OTELCOL_SCALEOUT_BIN`` overrides the lookup.
    """
    override = os.environ.get("SPANHOOK_OTELCOL_SCALEOUT_BIN")
    if override:
        path = Path(override)
    else:
        text = BUILD_SCALEOUT_SCRIPT.read_text(encoding="utf-8")
        version = text.split('OTELCOL_VERSION="', 1)[1].split('"', 1)[0]
        manifest_hash = hashlib.sha256(SCALEOUT_MANIFEST.read_bytes()).hexdigest()[:12]
        cache = os.environ.get("SPANHOOK_CACHE_DIR") or str(Path.home() / ".cache" / "spanhook")
        name = "otelcol-spanhook-scaleout"
        path = Path(cache) / f"{name}-{version}-{manifest_hash}" / name
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def require_scaleout_binary() -> str:
    """The scale-out collector's path; skip the test without it (fail when ``CI`` is set)."""
    path = scaleout_collector_binary()
    if path:
        return path
    fail: Callable[[str], NoReturn] = pytest.fail if os.environ.get("CI") else pytest.skip
    fail(
        "scale-out collector binary not found: run `bash scripts/build-scaleout-collector.sh` "
        "(needs Go) or set SPANHOOK_OTELCOL_SCALEOUT_BIN to an existing binary"
    )


@dataclass
class Service:
    """A binary with a fixed command line and environment that can be started many times."""

    name: str
    args: list[str]
    env: dict[str, str]
    ports: list[int]
    metrics_port: int | None = None
    process: ManagedProcess | None = None
    logs: list[str] = field(default_factory=list)

    def start(self, timeout: float = 60.0) -> None:
        assert self.process is None or not self.process.is_running(), f"{self.name} runs"
        self.process = ManagedProcess(self.name, self.args, self.env)
        for port in self.ports:
            self.process.wait_for_port(port, timeout=timeout)

    def _finish(self) -> int | None:
        if self.process is None:
            return None
        self.process.stop()
        self.logs.append(self.process.output())
        code = self.process.process.returncode
        self.process = None
        return code

    def stop(self) -> int | None:
        """SIGTERM and wait for the process to exit (graceful shutdown); its exit code."""
        return self._finish()

    def kill(self) -> int | None:
        """SIGKILL: no shutdown code runs."""
        if self.process is not None and self.process.is_running():
            self.process.process.send_signal(signal.SIGKILL)
            self.process.process.wait(timeout=10)
        return self._finish()

    def output(self) -> str:
        current = self.process.output() if self.process is not None else ""
        return "".join(self.logs) + current

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the collector's own metric ``name`` since its start, over the label sets
        that have ``labels``."""
        assert self.metrics_port is not None and self.process is not None
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        wanted = [f'{key}="{value}"' for key, value in labels.items()]
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((name + "{", name + " ")) and all(w in line for w in wanted)
        )


def collector_service(
    name: str, binary: str, config: Path, env: Mapping[str, str], ports: list[int]
) -> Service:
    args = [binary, f"--config={config}", f"--config=env:{_OVERRIDES_ENV}"]
    metrics = free_port()
    env = _child_env({**env, _OVERRIDES_ENV: _METRICS_ON % metrics})
    return Service(name, args, env, [*ports, metrics], metrics_port=metrics)


def jaeger_badger_service(
    binary: str, badger_dir: Path, otlp_port: int, query_port: int
) -> Service:
    """Jaeger with the repository's jaeger-badger.yaml, storing in ``badger_dir``: OTLP gRPC
    on ``otlp_port``, HTTP query API on ``query_port`` (127.0.0.1)."""
    env = {
        "JAEGER_BADGER_DIR": str(badger_dir),
        "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{otlp_port}",
        "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{free_port()}",
        "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{query_port}",
        "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        _OVERRIDES_ENV: _NO_METRICS,
    }
    args = [binary, f"--config={JAEGER_BADGER_CONFIG}", f"--config=env:{_OVERRIDES_ENV}"]
    return Service("jaeger", args, _child_env(env), [otlp_port, query_port])


@dataclass
class Timings:
    """Knobs the tests set through the configs' ``${env:...}`` overrides."""

    decision_wait: str = "3s"
    latency_threshold_ms: int = 500
    sample_percent: float = 40.0
    retry_max_interval: str = "1s"


class ScaleOutStack:
    """Jaeger (Badger) <- 2 tail-sampling collectors <- 1 gateway, all on 127.0.0.1."""

    def __init__(
        self, workdir: Path, timings: Timings | None = None, sinks: list[str] | None = None
    ) -> None:
        """``sinks``: send tail-sampling collector A / B to these OTLP gRPC endpoints
        ("127.0.0.1:port") instead of Jaeger, which then does not run."""
        collector = require_scaleout_binary()
        jaeger = require_binary(jaeger_binary(), "jaeger") if sinks is None else "jaeger"
        self.timings = timings or Timings()
        self.gateway_grpc_port, gateway_http = free_port(), free_port()
        self.tailsampling_ports = [free_port(), free_port()]
        self.jaeger_otlp_port, self.query_port = free_port(), free_port()
        self.jaeger = jaeger_badger_service(
            jaeger, workdir / "badger", self.jaeger_otlp_port, self.query_port
        )
        t = self.timings
        backends = sinks or [f"127.0.0.1:{self.jaeger_otlp_port}"] * 2
        self.with_jaeger = sinks is None
        self.tailsampling = [
            collector_service(
                f"tailsampling-{label}",
                collector,
                TAILSAMPLING_CONFIG,
                {
                    "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{port}",
                    "JAEGER_OTLP_ENDPOINT": backend,
                    "TAILSAMPLING_QUEUE_DIR": str(workdir / f"tailsampling-{label}"),
                    "TAILSAMPLING_DECISION_WAIT": t.decision_wait,
                    "TAILSAMPLING_LATENCY_THRESHOLD_MS": str(t.latency_threshold_ms),
                    "TAILSAMPLING_PERCENT": str(t.sample_percent),
                    "OTELCOL_RETRY_MAX_INTERVAL": t.retry_max_interval,
                },
                [port],
            )
            for label, port, backend in zip("ab", self.tailsampling_ports, backends, strict=True)
        ]
        self.gateway = collector_service(
            "gateway",
            collector,
            GATEWAY_CONFIG,
            {
                "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.gateway_grpc_port}",
                "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{gateway_http}",
                "TAILSAMPLING_A_ENDPOINT": f"127.0.0.1:{self.tailsampling_ports[0]}",
                "TAILSAMPLING_B_ENDPOINT": f"127.0.0.1:{self.tailsampling_ports[1]}",
                "GATEWAY_QUEUE_DIR": str(workdir / "gateway"),
                "OTELCOL_RETRY_MAX_INTERVAL": t.retry_max_interval,
            },
            [self.gateway_grpc_port, gateway_http],
        )

    @property
    def services(self) -> list[Service]:
        first = [self.jaeger] if self.with_jaeger else []
        return [*first, *self.tailsampling, self.gateway]

    @property
    def otlp_endpoint(self) -> str:
        """For ``OTEL_EXPORTER_OTLP_ENDPOINT`` of the apps (gRPC)."""
        return f"http://127.0.0.1:{self.gateway_grpc_port}"

    def start(self) -> None:
        for service in self.services:
            service.start()

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def accepted_by_tailsampling(self) -> float:
        """Spans the running tail-sampling collectors received since their last start."""
        return sum(
            s.metric("otelcol_receiver_accepted_spans")
            for s in self.tailsampling
            if s.process is not None
        )

    def logs(self) -> str:
        return "\n".join(f"===== {s.name}\n{s.output()[-6000:]}" for s in self.services)


@contextmanager
def running_stack(
    workdir: Path, timings: Timings | None = None, sinks: list[str] | None = None
) -> Iterator[ScaleOutStack]:
    stack = ScaleOutStack(workdir, timings, sinks)
    with ExitStack() as cleanup:
        cleanup.callback(stack.stop)
        stack.start()
        yield stack


def wait_or_fail(
    probe: Callable[[], object], stack: ScaleOutStack, message: str, timeout: float = 90.0
) -> None:
    """``wait_until``; on time-out fail the test with every process's log tail."""
    try:
        wait_until(probe, timeout=timeout, interval=0.5, message=message)
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{stack.logs()}")
