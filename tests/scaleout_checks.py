"""What Jaeger (or a per-collector sink) must hold after the scale-out tests' traffic.

Nothing in here is a test: :func:`problems` lists every way the stored traces differ from
what the tail-sampling policies keep out of what the two app processes sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TypeVar

from scaleout_apps import SentTrace, expected_kept, jaeger_all_trace_spans, jaeger_trace_spans
from scaleout_harness import ScaleOutStack, wait_or_fail

T = TypeVar("T")


def kept(sent: Iterable[SentTrace], percent: float) -> list[SentTrace]:
    return [t for t in sent if expected_kept(t, percent)]


def problems(
    stored: Mapping[str, Sequence[str]],
    sent: Sequence[SentTrace],
    percent: float,
    may_miss: Collection[str] = (),
) -> list[str]:
    """Differences between ``stored`` (trace id -> span ids, repeats included) and the
    traces the policies keep: missing (unless in ``may_miss``), partial, duplicated,
    kept although the policies drop it, or unknown."""
    by_id = {t.trace_id: t for t in sent}
    expected = {t.trace_id for t in kept(sent, percent)}
    out: list[str] = []
    for trace_id, spans in stored.items():
        trace = by_id.get(trace_id)
        if trace is None:
            out.append(f"{trace_id}: stored but never sent")
        elif trace_id not in expected:
            out.append(f"{trace_id} ({trace.kind}): stored but the policies drop it")
        elif len(spans) != len(set(spans)):
            out.append(f"{trace_id} ({trace.kind}): duplicate spans {sorted(spans)}")
        elif set(spans) != trace.spans:
            out.append(f"{trace_id} ({trace.kind}): partial, {len(spans)}/{len(trace.spans)}")
    for trace_id in sorted(expected - set(stored) - set(may_miss)):
        out.append(f"{trace_id} ({by_id[trace_id].kind}): missing")
    return out


def wait_until_whole_in_jaeger(
    stack: ScaleOutStack, traces: Iterable[SentTrace], timeout: float = 120.0
) -> None:
    """Wait until Jaeger returns every span of each trace (fail with the logs if not)."""
    pending = list(traces)

    def all_whole() -> bool:
        pending[:] = [
            t for t in pending if set(jaeger_trace_spans(stack.query_port, t.trace_id)) != t.spans
        ]
        return not pending

    wait_or_fail(all_whole, stack, f"{len(pending)} traces whole in Jaeger", timeout=timeout)


def settled(read: Callable[[], T], quiet_seconds: float) -> T:
    """``read()`` once it stopped changing for ``quiet_seconds`` (choose more than
    decision_wait + the retry interval: then nothing can arrive any more)."""
    snapshot = read()
    while True:
        time.sleep(quiet_seconds)
        again = read()
        if again == snapshot:
            return again
        snapshot = again


def settled_jaeger(stack: ScaleOutStack, quiet_seconds: float) -> dict[str, list[str]]:
    """Every trace Jaeger stores (trace id -> sorted span ids), once settled."""
    return settled(lambda: jaeger_all_trace_spans(stack.query_port), quiet_seconds)
