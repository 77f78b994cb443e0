"""The default compose path with Badger: two spanhook processes -> the project's Collector
(collector-config.yaml) -> Jaeger (jaeger-badger.yaml), all on 127.0.0.1. Every trace is
stored whole, and is still there after Jaeger restarts on the same Badger directory, as
with `docker compose restart` on the named volume.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collector_harness import (
    collector_binary,
    free_port,
    jaeger_binary,
    require_binary,
    run_collector,
    wait_until,
)
from scaleout_apps import ToolService, jaeger_all_trace_spans, kinds_cycle, run_agent
from scaleout_harness import jaeger_badger_service

pytestmark = pytest.mark.collector


def test_traces_survive_a_jaeger_restart_on_the_default_path(tmp_path: Path) -> None:
    collector_bin = require_binary(collector_binary(), "collector")
    badger = tmp_path / "badger"
    jaeger = jaeger_badger_service(
        require_binary(jaeger_binary(), "jaeger"), badger, free_port(), free_port()
    )
    otlp_port, query_port = jaeger.ports
    jaeger.start()
    try:
        with (
            run_collector(jaeger_endpoint=f"127.0.0.1:{otlp_port}", binary=collector_bin) as col,
            ToolService(f"http://{col.grpc_endpoint}", 0.1) as tool,
        ):
            sent = run_agent(tool, f"http://{col.grpc_endpoint}", kinds_cycle(12), 0.1)
            # no sampling on this path: every trace of both processes, whole
            expected = {t.trace_id: sorted(t.spans) for t in sent}
            try:
                wait_until(
                    lambda: jaeger_all_trace_spans(query_port) == expected,
                    timeout=60,
                    interval=0.5,
                    message="every trace whole in Jaeger",
                )
            except TimeoutError as exc:
                pytest.fail(f"{exc}\ncollector:\n{col.output()}\njaeger:\n{jaeger.output()}")
        assert sorted(p.name for p in badger.iterdir()) == ["keys", "values"]
        assert jaeger.stop() == 0  # what `docker compose restart` does
        jaeger.start()
        assert jaeger_all_trace_spans(query_port) == expected
    finally:
        jaeger.stop()
