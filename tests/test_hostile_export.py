"""One hostile run never costs the export of the others: with the real OTLP/gRPC exporter and a
real receiver on 127.0.0.1 that rejects requests over 4 MiB (as the Collector does), a run
carrying 50 MB values, lone surrogates, cycles and thousands of tags is exported bounded and
marked, and the hundreds of innocent spans batched with it all arrive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import spanhook
from collector_harness import ReceivedSpan, any_value_to_python
from raw_receiver import MAX_RECEIVE_BYTES, RawGrpcReceiver
from spanhook.callbacks import dispatch_custom_event
from spanhook.chains import Chain
from spanhook.schema import AgentAction
from spanhook.tools import Tool
from spanhook.tracing.attributes import SPAN_CONTENT_BUDGET

HUGE = "H" * 50_000_000
INNOCENT = 400


class Work(Chain):
    input_keys: ClassVar[list[str]] = ["payload"]
    output_keys: ClassVar[list[str]] = ["result"]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        dispatch_custom_event("progress", {"blob": HUGE, "bad": "x\ud800y"})
        return {"result": [HUGE, {"again": HUGE}]}


def hostile_run() -> dict[str, Any]:
    cyc: dict[str, Any] = {"n": 1}
    cyc["self"] = cyc
    return Work().invoke(
        {"payload": {"text": HUGE, "cyc": cyc, "bytes": b"\x00" * 10_000_000, "s": "\udfff"}},
        metadata={"document": HUGE, "big_int": 2**80, "surrogate": "a\ud800b", 7: cyc},
        tags=["t" * 100_000, "u\udc00", *[f"tag{i}" for i in range(5_000)]],
    )


@pytest.fixture
def rx(monkeypatch: pytest.MonkeyPatch) -> Iterator[RawGrpcReceiver]:
    for var in ("OTEL_EXPORTER_OTLP_HEADERS", "SPANHOOK_CONTENT_MAX_LENGTH"):
        monkeypatch.delenv(var, raising=False)
    with RawGrpcReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{receiver.endpoint}")
        yield receiver
        spanhook.shutdown(timeout=2.0)


def values_of(span: ReceivedSpan) -> Iterator[tuple[str, Any]]:
    for kv in span.span.attributes:
        yield kv.key, any_value_to_python(kv.value)
    for event in span.span.events:
        for kv in event.attributes:
            yield f"{event.name}/{kv.key}", any_value_to_python(kv.value)


def check_bounded(spans: list[ReceivedSpan], limit: int) -> int:
    """Every exported attribute within ``limit``; returns how many values were cut."""
    cut = 0
    for span in spans:
        for key, value in values_of(span):
            if isinstance(value, str):
                assert len(value) <= limit, (key, len(value))
                cut += "[truncated, " in value
            elif isinstance(value, list):
                assert sum(len(str(v)) for v in value) <= limit, (key, len(value))
                cut += any("[truncated, " in str(v) for v in value)
    return cut


@pytest.mark.parametrize("sdk_limit", [None, 1000], ids=["max_content_length", "otel_env_limit"])
def test_a_hostile_run_is_exported_bounded_and_its_batch_is_not_rejected(
    rx: RawGrpcReceiver, monkeypatch: pytest.MonkeyPatch, sdk_limit: int | None
) -> None:
    if sdk_limit is not None:
        monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", str(sdk_limit))
    spanhook.configure(exporters="otlp", capture_content=True, max_content_length=4096)
    limit = sdk_limit or 4096
    echo = Tool(name="echo", func=lambda s: s, description="d")

    for i in range(INNOCENT // 2):
        assert echo.run(f"innocent {i}") == f"innocent {i}"
    result = hostile_run()
    assert result["result"][0] is HUGE  # the caller gets its own values back
    for i in range(INNOCENT // 2, INNOCENT):
        assert echo.run(f"innocent {i}") == f"innocent {i}"

    assert spanhook.force_flush(timeout=20.0)
    rx.wait_for_bytes(min_spans=INNOCENT + 1, timeout=20.0)
    spans = rx.spans()
    assert len(spans) == INNOCENT + 1  # nothing rejected, nothing lost
    assert all(len(raw) < MAX_RECEIVE_BYTES for raw in rx.raw)
    assert sum(len(raw) for raw in rx.raw) < 2 * 1024 * 1024

    [work] = [s for s in spans if s.span.name == "Work"]
    assert check_bounded(spans, limit) >= 5  # input, output, metadata, tags, event: marked
    a = work.attributes
    assert a["spanhook.metadata.document"].endswith("...[truncated, 50000000 chars]")
    assert a["spanhook.metadata.surrogate"] == "a\ufffdb"
    assert a["spanhook.metadata.big_int"] == str(2**80)
    assert a["spanhook.metadata.7"] == '{"n": 1, "self": "[circular reference]"}'
    assert a["spanhook.tags"][0].endswith("...[truncated, 100000 chars]")
    assert a["spanhook.tags"][-1].endswith("more items]")
    payload = json.loads(a["spanhook.input"])["payload"]  # cut inside its strings: still JSON
    assert payload["text"].endswith("...[truncated, 50000000 chars]")
    assert payload["cyc"]["self"] == "[circular reference]"
    assert payload["bytes"].startswith("[10000000 bytes]")
    assert payload["s"] == "\ufffd"
    [event] = [e for e in work.span.events if e.name == "spanhook.custom_event"]
    assert any(kv.key == "spanhook.data" for kv in event.attributes)


class Chatty(Chain):
    """One run that records 300 agent actions of 5,000 four-byte characters each."""

    input_keys: ClassVar[list[str]] = ["n"]
    output_keys: ClassVar[list[str]] = ["done"]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        run = spanhook.current_run()
        assert run is not None
        for _ in range(inputs["n"]):
            run.on_agent_action(AgentAction(tool="t", tool_input=WIDE, log=WIDE))
        return {"done": True}


WIDE = "\U0001f600" * 5_000  # 20 kB of UTF-8


def test_a_run_recording_thousands_of_big_events_stays_within_its_budget(
    rx: RawGrpcReceiver,
) -> None:
    """128 events (the SDK's limit) x 2 values x 4096 four-byte characters would be a 4.2 MB
    span, over the 4 MiB limit by itself: the span's content budget keeps it near 1 MiB."""
    spanhook.configure(exporters="otlp", capture_content=True, max_content_length=4096)
    echo = Tool(name="echo", func=lambda s: s, description="d")
    for i in range(INNOCENT):
        echo.run(f"innocent {i}")
    assert Chatty().invoke({"n": 300})["done"] is True
    assert spanhook.force_flush(timeout=20.0)
    rx.wait_for_bytes(min_spans=INNOCENT + 1, timeout=20.0)
    spans = rx.spans()
    assert len(spans) == INNOCENT + 1  # the batch holding the run was not rejected
    assert all(len(raw) < MAX_RECEIVE_BYTES for raw in rx.raw)
    [chatty] = [s for s in spans if s.span.name == "Chatty"]
    size = chatty.span.ByteSize()
    assert size < 1.5 * 1024 * 1024
    recorded = [
        any_value_to_python(kv.value)
        for e in chatty.span.events
        for kv in e.attributes
        if kv.key in ("gen_ai.tool.call.arguments", "spanhook.log")
    ]
    assert all(len(v) <= 4096 for v in recorded)
    # the SDK keeps the last 128 events: by then the budget was spent, as the marker says
    assert recorded[-1] == f"[content budget of this span spent: {SPAN_CONTENT_BUDGET} chars]"
