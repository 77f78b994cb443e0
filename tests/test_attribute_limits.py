"""The value -> attribute policy: every value rendered valid, bounded and marked where cut,
whatever it is; one size limit (``max_content_length``, lowered by the SDK's attribute value
length limit) for content, metadata, tags, names, errors and the redact hook's results."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhook.tracing import attributes as attr
from spanhook.tracing import settings as settings_mod
from spanhook.tracing.values import render, valid_utf8


def encodes(text: str) -> str:
    text.encode("utf-8")  # raises on a lone surrogate, as the OTLP encoder would
    return text


class BadRepr:
    def __repr__(self) -> str:
        raise ValueError("repr refused")

    def __str__(self) -> str:
        raise ValueError("str refused")


class BadDump:
    def model_dump(self) -> dict[str, Any]:
        raise RuntimeError("dump refused")


def cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {"name": "loop"}
    d["self"] = d
    return d


def deep(levels: int) -> list[Any]:
    root: list[Any] = []
    cur = root
    for _ in range(levels):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    return root


# -- rendering ---------------------------------------------------------------------------


def test_a_huge_string_is_cut_to_the_limit_with_a_marker_naming_its_size() -> None:
    text = render("x" * 50_000_000, 200)
    assert len(text) == 200
    assert text.endswith("...[truncated, 50000000 chars]")
    assert text.startswith("xxx")


def test_structured_content_stays_json_when_cut() -> None:
    value = {"question": "q" * 10_000, "context": ["c" * 5_000, "short"], "n": 3}
    text = render(value, 300)
    assert len(text) <= 300
    data = json.loads(text)
    assert data["n"] == 3
    assert data["question"].endswith("...[truncated, 10000 chars]")
    assert data["context"][0].endswith("...[truncated, 5000 chars]")
    assert data["context"][1] == "short"


def test_cycles_and_depth_become_markers() -> None:
    assert json.loads(render(cyclic(), 500)) == {"name": "loop", "self": "[circular reference]"}
    text = render(deep(10_000), 4096)
    assert "[nested too deep]" in text
    json.loads(text)


def test_a_container_too_big_to_walk_is_counted_not_walked() -> None:
    value = list(range(1_000_000))
    text = render(value, 1000)
    assert len(text) <= 1000
    data = json.loads(text)
    assert data[0] == 0
    assert isinstance(data[-1], str) and data[-1].endswith("more items]")
    more = int(data[-1].strip("[").split()[0])
    assert more + len(data) - 1 == 1_000_000  # the marker counts exactly what was left out


def test_non_json_values_are_marked_text() -> None:
    data = json.loads(
        render(
            {
                1: "int key",
                (1, 2): "tuple key",
                None: math.nan,
                "inf": -math.inf,
                "bytes": b"\x00\xff" * 100,
                "big": 10**5000,
                "set": {7},
                "repr": BadRepr(),
                "dump": BadDump(),
            },
            4096,
        )
    )
    assert data["1"] == "int key" and data["[1, 2]"] == "tuple key"
    assert data["null"] == "NaN" and data["inf"] == "-Infinity"
    assert data["bytes"].startswith("[200 bytes] b'\\x00\\xff")
    assert data["big"] == "[int of 16610 bits]"
    assert data["set"] == [7]
    assert data["repr"] == "[unrenderable BadRepr: __repr__ raised ValueError]"
    assert data["dump"] == "[unrenderable BadDump: RuntimeError in dump]"


def test_lone_surrogates_are_replaced_everywhere() -> None:
    assert encodes(render("a\ud800b", 100)) == "a\ufffdb"
    assert json.loads(encodes(render({"k\udfff": ["v\ud83d"]}, 100))) == {"k\ufffd": ["v\ufffd"]}
    assert valid_utf8("\ud83d\ude00") == "\U0001f600"  # a pair written as two code points


def test_a_str_subclass_with_a_hostile_str_is_rendered_as_its_text() -> None:
    class Sneaky(str):
        def __str__(self) -> str:
            raise ValueError("no")

    assert render(Sneaky("hello"), 100) == "hello"


def test_dataclasses_named_tuples_and_pydantic_models_are_rendered_by_field() -> None:
    from typing import NamedTuple

    import pydantic

    @dataclasses.dataclass
    class Point:
        x: int
        label: str

    class Pair(NamedTuple):
        left: int
        right: int

    class Model(pydantic.BaseModel):
        name: str
        point: dict[str, int]

    assert json.loads(render(Point(1, "a"), 100)) == {"x": 1, "label": "a"}
    assert json.loads(render(Pair(1, 2), 100)) == {"left": 1, "right": 2}
    assert json.loads(render(Model(name="m", point={"x": 1}), 100)) == {
        "name": "m",
        "point": {"x": 1},
    }


@pytest.mark.parametrize("limit", [1, 5, 16, 17, 40, 100])
def test_tiny_limits_are_obeyed_too(limit: int) -> None:
    for value in ("y" * 1000, {"k": "v" * 1000}, list(range(1000)), cyclic()):
        assert len(render(value, limit)) <= limit


# -- the one limit ------------------------------------------------------------------------


def test_the_sdk_attribute_value_limit_lowers_the_content_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read, like the SDK's span limits, when the settings are loaded (``configure()``)."""
    assert attr.value_limit(4096) == 4096
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "300")
    settings_mod.set_settings(None)  # what configure() does: the settings are reloaded
    assert attr.value_limit(4096) == 300
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100")  # span-specific wins
    settings_mod.set_settings(None)  # what configure() does: the settings are reloaded
    assert attr.value_limit(4096) == 100
    assert attr.value_limit(50) == 50
    text = attr.content_value("z" * 1000, 4096)
    assert len(text) == 100 and text.endswith("...[truncated, 1000 chars]")


def test_tags_are_bounded_in_size_and_count() -> None:
    tags = attr.tags_attribute(["t" * 5000, "b\ud800"] + [f"x{i}" for i in range(500)], 200)
    assert sum(len(t) for t in tags) <= 200
    assert tags[0].endswith("...[truncated, 5000 chars]")
    assert tags[-1].endswith("more items]")
    many = attr.tags_attribute([""] * 10_000, 4096)
    assert (
        len(many) == attr.MAX_TAGS + 1 and many[-1] == f"...[{10_000 - attr.MAX_TAGS} more items]"
    )
    assert attr.tags_attribute(["a", "b"], 4096) == ["a", "b"]
    for tag in attr.tags_attribute(["ok\ud800"], 100):
        encodes(tag)


def test_metadata_keys_and_values_are_bounded_and_never_raise() -> None:
    metadata: dict[Any, Any] = {
        "big": "y" * 10_000_000,
        "k" * 10_000: 1,
        5: cyclic(),
        BadRepr(): "hostile key",
        "bytes": b"\x00",
        "huge_int": 2**70,
        "nan": math.nan,
        "api_key": "sk-never",
        "words": ["w" * 500] * 10,
    }
    out = attr.metadata_attributes(metadata, 100)
    for key, value in out.items():
        encodes(key)
        assert len(key) <= len(attr.METADATA_PREFIX) + 256
        if isinstance(value, str):
            assert len(encodes(value)) <= 100
        elif isinstance(value, list):
            assert sum(len(v) for v in value) <= 100
    assert out["spanhook.metadata.big"].endswith("...[truncated, 10000000 chars]")  # type: ignore[union-attr]
    assert out["spanhook.metadata.5"] == '{"name": "loop", "self": "[circular reference]"}'
    assert out["spanhook.metadata.huge_int"] == str(2**70)  # past int64: text, not an error
    assert math.isnan(out["spanhook.metadata.nan"])  # type: ignore[arg-type]
    assert out["spanhook.metadata.api_key"] == "***"
    assert "spanhook.metadata.[unrenderable BadRepr: __repr__ raised ValueError]" in out


def test_bulk_metadata_overflow_is_bounded() -> None:
    metadata = {f"k{i}": "v" * 100 for i in range(100_000)}
    out = attr.metadata_attributes(metadata, 500, max_items=4)
    assert len(out) == 5
    overflow = json.loads(str(out[attr.METADATA_OVERFLOW]))
    assert len(str(out[attr.METADATA_OVERFLOW])) <= 500
    assert overflow["..."].endswith("more entries]")


def test_what_the_redact_hook_returns_obeys_the_limit() -> None:
    huge = {"payload": "p" * 1_000_000}
    out = attr.metadata_attributes({"m": "small"}, 100, redact=lambda k, v: huge)
    assert len(str(out["spanhook.metadata.m"])) <= 100
    json.loads(str(out["spanhook.metadata.m"]))
    assert attr.redacted(lambda k, v: 1 / 0, "k", "v") == attr.REDACTION_FAILED


def test_plain_attributes_are_valid_otel_values() -> None:
    out = attr.bounded_attributes(
        {
            "s": "a\ud800" * 1000,
            "n": None,
            "i": 2**64,
            "f": 1.5,
            "b": True,
            "l": ["x", "y"],
            "o": BadRepr(),
        },
        64,
    )
    assert "n" not in out
    assert len(encodes(str(out["s"]))) == 64
    assert out["i"] == str(2**64) and out["f"] == 1.5 and out["b"] is True
    assert out["l"] == ["x", "y"]
    assert out["o"] == '"[unrenderable BadRepr: __repr__ raised ValueError]"'
    assert attr.span_name("n\ud800" * 2000) == encodes(attr.span_name("n\ud800" * 2000))
    assert len(attr.span_name("n" * 5000)) == attr.MAX_NAME_LENGTH


def test_an_error_whose_str_raises_or_holds_surrogates_is_recorded() -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tp.get_tracer("t")

    class Hostile(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    for error in (Hostile(), ValueError("bad \ud800 " + "m" * 10_000)):
        span = tracer.start_span("s")
        try:
            raise error
        except Exception as e:
            attr.record_error(span, e, 200)
        span.end()
    hostile, surrogate = exporter.get_finished_spans()
    for span in (hostile, surrogate):
        [event] = span.events
        assert event.name == "exception"
        for value in event.attributes.values():  # type: ignore[union-attr]
            assert len(encodes(str(value))) <= 200
        assert span.status.description is not None
        assert len(encodes(span.status.description)) <= 200
    assert (
        hostile.attributes[attr.ERROR_TYPE]
        == "test_an_error_whose_str_raises_or_holds_surrogates_is_recorded.<locals>.Hostile"
    )  # type: ignore[index]
    assert hostile.events[0].attributes["exception.message"] == "Hostile()"  # type: ignore[index]
    stack = surrogate.events[0].attributes["exception.stacktrace"]  # type: ignore[index]
    assert str(stack).startswith("[truncated, ") and str(stack).endswith("m" * 20 + "\n")


def test_each_span_has_a_content_budget_of_its_own() -> None:
    tracer = TracerProvider().get_tracer("t")
    first, second = tracer.start_span("a"), tracer.start_span("b")
    chunk = "c" * 4096
    kept = [attr.spend(first, chunk, 4096) for _ in range(attr.SPAN_CONTENT_BUDGET // 4096 + 5)]
    assert kept[: attr.SPAN_CONTENT_BUDGET // 4096] == [chunk] * (attr.SPAN_CONTENT_BUDGET // 4096)
    assert kept[-1] == f"[content budget of this span spent: {attr.SPAN_CONTENT_BUDGET} chars]"
    assert attr.spend(second, chunk, 4096) == chunk  # another span: a budget of its own
    big = "b" * 500_000  # a limit raised past the budget keeps room for 4 values of it
    assert attr.spend(tracer.start_span("c"), big, 500_000) == big


def test_the_redact_hooks_results_obey_the_limit_on_every_attribute() -> None:
    """A hook returning something huge, cyclic or with lone surrogates: content, metadata and
    event values stay valid and within the limit."""
    from opentelemetry import trace

    from spanhook.callbacks import dispatch_custom_event
    from spanhook.tools import Tool

    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tp)
    returned = ["x" * 1_000_000, cyclic(), deep(10_000), "a\ud800b", BadRepr()]

    def hook(key: str, value: Any) -> Any:
        return returned[len(key) % len(returned)]

    settings_mod.set_settings(
        settings_mod.TracingSettings(capture_content=True, max_content_length=300, redact=hook)
    )

    def work(s: str) -> str:
        dispatch_custom_event("e", s)
        return s

    assert Tool(name="t", func=work, description="d").run("in", metadata={"m": 1, "mm": 2}) == "in"
    [span] = exporter.get_finished_spans()
    values = list((span.attributes or {}).items()) + [
        kv for e in span.events for kv in (e.attributes or {}).items()
    ]
    redacted = [
        v
        for k, v in values
        if k.startswith(("gen_ai.tool.call", "spanhook.metadata", "spanhook.data"))
    ]
    assert len(redacted) == 5
    for value in redacted:
        assert isinstance(value, str) and len(encodes(value)) <= 300
