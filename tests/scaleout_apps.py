"""The two app processes of the scale-out tests and what Jaeger should hold afterwards.

:class:`ToolService` runs ``scaleout_tool_service.py``; :func:`run_agent` runs one batch
of traces through ``scaleout_agent.py``, which calls it. Both export with spanhook's OTLP
path to the gateway. :class:`SentTrace` is what the two processes report they sent;
:func:`expected_kept` applies the tail-sampling policies of collector-tailsampling.yaml
(errors, latency, probabilistic: the processor's own FNV-1a hash of the trace id).
:func:`jaeger_trace_spans` / :func:`jaeger_all_trace_spans` read Jaeger's HTTP API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from collector_harness import _child_env

TESTS = Path(__file__).resolve().parent
KINDS = ("ok", "remote_error", "local_error", "slow")
SERVICES = ("llm-agent", "tool-service")


@dataclass
class SentTrace:
    trace_id: str
    kind: str
    spans: frozenset[str]  # span ids both processes sent (hex)


def app_env(otlp_endpoint: str, slow_seconds: float) -> dict[str, str]:
    return _child_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "SCALEOUT_SLOW_SECONDS": str(slow_seconds),
            "PYTHONPATH": str(TESTS),
        }
    )


class ToolService:
    """``scaleout_tool_service.py`` as a child process (context manager)."""

    def __init__(self, otlp_endpoint: str, slow_seconds: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / "scaleout_tool_service.py")],
            env=app_env(otlp_endpoint, slow_seconds),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = f"http://127.0.0.1:{int(self._line('PORT'))}/tool"

    def _line(self, prefix: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(prefix + " "):
            raise RuntimeError(f"tool service said {line!r}, expected {prefix} ...")
        return line.split(" ", 1)[1]

    def flush(self) -> dict[str, list[str]]:
        """Flush its export; the span ids it sent since the last flush, by trace id."""
        assert self.process.stdin is not None
        self.process.stdin.write("flush\n")
        self.process.stdin.flush()
        spans: dict[str, list[str]] = json.loads(self._line("SPANS"))
        return spans

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ToolService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_agent(
    tool: ToolService, otlp_endpoint: str, kinds: Iterable[str], slow_seconds: float = 1.0
) -> list[SentTrace]:
    """Run one batch of traces (one per kind) across both processes; both have flushed
    their export when this returns."""
    kinds = list(kinds)
    done = subprocess.run(
        [sys.executable, str(TESTS / "scaleout_agent.py"), tool.url, *kinds],
        env=app_env(otlp_endpoint, slow_seconds),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("TRACES ")]
    if done.returncode != 0 or len(lines) != 1:
        raise RuntimeError(f"agent failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    remote = tool.flush()
    return [
        SentTrace(t["trace_id"], t["kind"], frozenset(t["spans"] + remote.get(t["trace_id"], [])))
        for t in json.loads(lines[0].split(" ", 1)[1])
    ]


def kinds_cycle(n: int) -> list[str]:
    """n traces: 1 in 6 with the error only in the tool service, 1 in 6 only in the agent,
    1 in 6 slow, the rest OK."""
    pattern = ("remote_error", "ok", "local_error", "ok", "slow", "ok")
    return [pattern[i % len(pattern)] for i in range(n)]


# ------------------------------------------------------------ the tail-sampling policies

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_HASH_SALT = b"default-hash-seed"  # tailsamplingprocessor's default
_MAX_UINT64 = 2**64 - 1


def probabilistic_keeps(trace_id: str, percent: float) -> bool:
    """The probabilistic policy's decision: FNV-1a-64 over the salt and the 16 trace id
    bytes, kept when <= MaxUint64 * ratio (tailsamplingprocessor, release 0.161.0)."""
    h = _FNV_OFFSET
    for byte in _HASH_SALT + bytes.fromhex(trace_id):
        h = ((h ^ byte) * _FNV_PRIME) & _MAX_UINT64
    ratio = min(percent / 100, 1.0)
    threshold = int(Fraction(_MAX_UINT64) * Fraction(ratio))
    return h <= threshold


def expected_kept(trace: SentTrace, percent: float) -> bool:
    """Errors (either process) and slow traces always; OK traces by the hash."""
    return trace.kind != "ok" or probabilistic_keeps(trace.trace_id, percent)


# ------------------------------------------------------------ Jaeger's HTTP query API


def _get(query_port: int, path: str) -> Any:
    url = f"http://127.0.0.1:{query_port}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def jaeger_trace_spans(query_port: int, trace_id: str) -> list[str]:
    """Span ids Jaeger returns for one trace (``GET /api/traces/{id}``); [] if unknown."""
    try:
        data = _get(query_port, f"/api/traces/{trace_id}").get("data") or []
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    return [span["spanID"] for trace in data for span in trace["spans"]]


def jaeger_all_trace_spans(query_port: int) -> dict[str, list[str]]:
    """Every stored trace of the two app services: trace id -> span ids (with repeats)."""
    out: dict[str, list[str]] = {}
    for service in SERVICES:
        params = urllib.parse.urlencode({"service": service, "limit": "5000", "lookback": "2h"})
        try:
            data = _get(query_port, f"/api/traces?{params}").get("data") or []
        except urllib.error.HTTPError:
            continue
        for trace in data:
            out[trace["traceID"]] = sorted(span["spanID"] for span in trace["spans"])
    return out
