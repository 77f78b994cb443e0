"""Hostile values and the harness that checks what spanhook makes of them: the values
(cyclic, 10,000 levels deep, 50 MB, bytes, NaN, huge ints, non-string keys, objects whose
``__repr__``/``__str__``/``model_dump`` or attribute lookups raise, containers that fail while
read, lone surrogates, secrets in models and URLs) as a catalogue and as Hypothesis strategies;
a harness counting started and ended spans and checking every exported attribute; small apps
built on the public primitives."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import pydantic
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhook.chains import Chain
from spanhook.chat_models import SimpleChatModel
from spanhook.llms import LLM
from spanhook.retrievers import BaseRetriever
from spanhook.tracing import settings as settings_mod

LIMIT = 256


# -- hostile values --------------------------------------------------------------------------


class RaisingRepr:
    def __repr__(self) -> str:
        raise ValueError("__repr__ refused")

    def __str__(self) -> str:
        raise ValueError("__str__ refused")


class RaisingDump:
    def model_dump(self) -> Any:
        raise RuntimeError("model_dump refused")


class BrokenMapping(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("items refused")


class BrokenList(list[Any]):
    def __iter__(self) -> Any:
        raise RuntimeError("iteration refused")

    def __len__(self) -> int:
        raise RuntimeError("len refused")


class Booby:
    """Every attribute lookup raises (``model_dump``, ``_fields``...)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


class Secretive(pydantic.BaseModel):
    api_key: str = "sk-HOSTILE-SECRET"
    note: str = "n"


@dataclasses.dataclass
class Point:
    x: float
    label: Any


def cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"k": 1}
    d["self"] = d
    return d


def cyclic_list() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return items


def deep(levels: int) -> Any:
    root: dict[str, Any] = {}
    cur = root
    for _ in range(levels):
        cur["d"] = {}
        cur = cur["d"]
    return root


HUGE = "h" * 50_000_000
DEEP = deep(10_000)
SPECIALS: list[Any] = [
    HUGE,
    DEEP,
    cyclic_dict(),
    cyclic_list(),
    RaisingRepr(),
    RaisingDump(),
    Secretive(),
    Point(math.nan, RaisingRepr()),
    b"\x00\xff" * 1000,
    bytearray(b"ba"),
    math.nan,
    math.inf,
    -math.inf,
    10**5000,
    2**64,
    {1: "int key", (1, 2): "tuple key", None: "none key", 1.5: "float key"},
    {frozenset({1}): "frozenset key", RaisingRepr(): "hostile key"},
    "lone \ud800 surrogate",
    "\udfff",
    "https://user:pw-HOSTILE-SECRET@host/x",
    BrokenMapping(a=1),
    BrokenList([1, 2]),
    Booby(),
]


def special(pool: list[Any]) -> st.SearchStrategy[Any]:
    """One of ``pool`` (drawn by index: Hypothesis never calls the values' raising repr)."""
    return st.integers(0, len(pool) - 1).map(lambda i: pool[i])


surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
texts = st.text(alphabet=st.one_of(st.characters(), surrogates), max_size=40)
leaves = st.one_of(
    texts,
    st.binary(max_size=40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers() | st.sampled_from([2**63, -(2**63) - 1]),
    st.none(),
    st.booleans(),
    special(SPECIALS),
)
keys = st.one_of(
    texts, st.integers(), st.floats(allow_nan=False), st.none(), st.tuples(st.integers())
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=12,
)
text_values = st.one_of(texts, special([HUGE, "lone \ud800 surrogate", "\udfff", ""]))
tag_lists = st.lists(text_values, max_size=8) | st.just(["t"] * 10_000)
metadata_maps = st.dictionaries(keys, values, max_size=6) | st.just(
    {f"k{i}": HUGE for i in range(200)}
)


# -- the checks ------------------------------------------------------------------------------


class Lifecycle(SpanProcessor):
    """Counts spans started and ended."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


class Harness:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.lifecycle = Lifecycle()
        provider = TracerProvider()
        provider.add_span_processor(self.lifecycle)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        trace.set_tracer_provider(provider)
        settings_mod.set_settings(
            settings_mod.TracingSettings(
                capture_content=True, max_content_length=LIMIT, token_events=True
            )
        )

    def reset(self) -> None:
        self.exporter.clear()
        self.lifecycle.started = self.lifecycle.ended = 0

    def check(self, *expected_keys: str) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        assert spans, "no span was exported"
        assert self.lifecycle.started == self.lifecycle.ended == len(spans)
        request = encode_spans(spans)  # what the OTLP exporters send: must encode...
        assert len(request.SerializeToString()) < 2 * 1024 * 1024  # ...and stay small,
        assert exported_attributes(request) == recorded_attributes(spans)  # dropping nothing
        present: set[str] = set()
        for span in spans:
            for attributes in [span.attributes] + [e.attributes for e in span.events]:
                for key, value in (attributes or {}).items():
                    present.add(key)
                    bounded(key, value)
        missing = [k for k in expected_keys if k not in present]
        assert not missing, f"attributes {missing} were not recorded"
        return spans


def recorded_attributes(spans: list[ReadableSpan]) -> int:
    """How many attributes (span and event ones) the SDK holds for ``spans``."""
    return sum(
        len(span.attributes or {}) + sum(len(e.attributes or {}) for e in span.events)
        for span in spans
    )


def exported_attributes(request: Any) -> int:
    """How many attributes an OTLP request carries (the encoder drops what it cannot encode)."""
    return sum(
        len(span.attributes) + sum(len(e.attributes) for e in span.events)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    )


def bounded(key: str, value: Any) -> None:
    assert len(key) <= LIMIT + 64, key[:80]
    if isinstance(value, str):
        value.encode("utf-8")
        assert len(value) <= LIMIT, (key, len(value))
    elif isinstance(value, (list, tuple)):
        assert sum(len(str(v)) for v in value) <= LIMIT, (key, len(value))
        for v in value:
            str(v).encode("utf-8")
    elif isinstance(value, int) and not isinstance(value, bool):
        assert -(2**63) <= value < 2**63


def same(got: Any, expected: Any) -> None:
    assert got is expected or (got == expected) is True


# -- the apps ---------------------------------------------------------------------------------


class Echo(Chain):
    input_keys: ClassVar[list[str]] = ["x"]
    output_keys: ClassVar[list[str]] = ["y"]

    def __init__(self, make: Callable[[Any], Any] = lambda x: x, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.make = make

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"y": self.make(inputs["x"])}


class Returns(LLM):
    """A model whose completion is whatever the test says."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def _call(self, prompt: str, stop: list[str] | None = None, **kwargs: Any) -> str:
        return self.text


class Chat(SimpleChatModel):
    def _call(self, messages: Any, stop: list[str] | None = None, **kwargs: Any) -> str:
        return "fine"


class Docs(BaseRetriever):
    def __init__(self, docs: Any) -> None:
        super().__init__()
        self.docs = docs

    def _get_relevant_documents(self, query: str) -> Any:
        return self.docs


TEXT_SPECIALS = [HUGE, "lone \ud800 surrogate", "\udfff", "", "https://u:pw-HOSTILE-SECRET@h"]
