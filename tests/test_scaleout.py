"""The scale-out tiers for real: one gateway (collector-gateway.yaml) routing by trace id to
two tail-sampling collectors (collector-tailsampling.yaml), then Jaeger with Badger
(jaeger-badger.yaml), all on 127.0.0.1, fed by two app processes that share every trace
(spanhook ``inject_headers`` -> ``continue_trace``, OTLP export from each).

Needs scripts/build-scaleout-collector.sh and scripts/build-jaeger.sh (skipped when
missing, failed under CI). Fault tests: tests/test_scaleout_faults.py.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from collector_harness import GrpcTraceReceiver
from scaleout_apps import ToolService, kinds_cycle, run_agent
from scaleout_checks import kept, problems, settled, settled_jaeger, wait_until_whole_in_jaeger
from scaleout_harness import Timings, running_stack, wait_or_fail

pytestmark = pytest.mark.collector

TIMINGS = Timings()
SLOW = TIMINGS.latency_threshold_ms / 1000 + 0.5  # the tool's sleep in "slow" traces
QUIET = 6.0  # > decision_wait (3 s) + retry interval: nothing can arrive after that


def test_every_trace_stays_whole_on_one_tailsampling_collector(tmp_path: Path) -> None:
    with (
        GrpcTraceReceiver() as sink_a,
        GrpcTraceReceiver() as sink_b,
        running_stack(tmp_path, TIMINGS, sinks=[sink_a.endpoint, sink_b.endpoint]) as stack,
        ToolService(stack.otlp_endpoint, SLOW) as tool,
    ):
        sent = run_agent(tool, stack.otlp_endpoint, kinds_cycle(60), SLOW)
        expected = kept(sent, TIMINGS.sample_percent)
        needed = sum(len(t.spans) for t in expected)
        wait_or_fail(
            lambda: len(sink_a.spans()) + len(sink_b.spans()) >= needed,
            stack,
            f"{needed} kept spans at the sinks",
        )
        settled(lambda: (len(sink_a.spans()), len(sink_b.spans())), QUIET)
        where: dict[str, set[str]] = defaultdict(set)
        stored: dict[str, list[str]] = defaultdict(list)
        for label, sink in (("a", sink_a), ("b", sink_b)):
            for span in sink.spans():
                where[span.trace_id].add(label)
                stored[span.trace_id].append(span.span_id)
    split = {trace_id: labels for trace_id, labels in where.items() if len(labels) > 1}
    assert split == {}, f"traces split across tail-sampling collectors: {split}"
    assert problems(stored, sent, TIMINGS.sample_percent) == []
    # both collectors took a share of the traces; every policy kept something
    assert {label for labels in where.values() for label in labels} == {"a", "b"}
    assert {t.kind for t in expected} == {"ok", "remote_error", "local_error", "slow"}


def test_jaeger_gets_exactly_the_kept_traces_whole(tmp_path: Path) -> None:
    with (
        running_stack(tmp_path, TIMINGS) as stack,
        ToolService(stack.otlp_endpoint, SLOW) as tool,
    ):
        sent = run_agent(tool, stack.otlp_endpoint, kinds_cycle(48), SLOW)
        expected = kept(sent, TIMINGS.sample_percent)
        wait_until_whole_in_jaeger(stack, expected)
        stored = settled_jaeger(stack, QUIET)
        # a trace whose only error is in the second process arrives whole
        remote = [t for t in sent if t.kind == "remote_error"]
        assert remote and all(set(stored[t.trace_id]) == t.spans for t in remote)
    assert problems(stored, sent, TIMINGS.sample_percent) == []
    share = [t for t in expected if t.kind == "ok"]
    dropped = [t for t in sent if t.kind == "ok" and t not in share]
    assert share and dropped, "the probabilistic share should keep some OK traces, not all"
