"""Nothing the application hands spanhook can hurt it (property-based, Hypothesis).

With content capture on, hostile values (cyclic, 10,000 levels deep, 50 MB, bytes, NaN and
infinities, huge ints, non-string keys, objects whose ``__repr__``/``__str__``/``model_dump``
raise, lone surrogates, secrets in models) go through every place a value is recorded, via
spanhook's public primitives: chain inputs and outputs, tool input and output, model prompts,
messages and generations, retriever queries and documents, metadata, tags, custom events and
agent actions. For each: the call returns exactly what the user's code returned, every
started span ends, and every span encodes as an OTLP request (valid UTF-8, int64) with each
recorded value present, marked where cut, and within the size limit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from spanhook.agents import AgentExecutor
from spanhook.callbacks import dispatch_custom_event
from spanhook.chains import Chain
from spanhook.chat_models import SimpleChatModel
from spanhook.llms import LLM, FakeListLLM
from spanhook.retrievers import BaseRetriever
from spanhook.schema import AgentAction, AgentFinish, Document, HumanMessage
from spanhook.tools import Tool
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


@pytest.fixture
def harness() -> Iterator[Harness]:
    yield Harness()


def same(got: Any, expected: Any) -> None:
    assert got is expected or (got == expected) is True


prop = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


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


# -- every place a value is recorded -----------------------------------------------------------


def chain_io(h: Harness, value: Any) -> None:
    h.reset()
    same(Echo().invoke({"x": value})["y"], value)
    h.check("spanhook.input", "spanhook.output")
    h.reset()
    same(asyncio.run(Echo().ainvoke({"x": value}))["y"], value)
    h.check("spanhook.input", "spanhook.output")


def tool_io(h: Harness, value: Any) -> None:
    h.reset()
    echo = Tool(name="echo", func=lambda x: x, description="d")
    same(echo.run({"x": value}), value)
    h.check("gen_ai.tool.call.arguments", "gen_ai.tool.call.result")
    h.reset()
    same(asyncio.run(echo.arun({"x": value})), value)
    h.check("gen_ai.tool.call.arguments", "gen_ai.tool.call.result")


def chat_messages(h: Harness, value: Any) -> None:
    h.reset()
    assert Chat().invoke([HumanMessage(content=value), ("human", "hi")]).content == "fine"
    h.check("gen_ai.input.messages", "gen_ai.output.messages")
    h.reset()
    assert asyncio.run(Chat().ainvoke([HumanMessage(content=value)])).content == "fine"
    h.check("gen_ai.input.messages", "gen_ai.output.messages")


def documents(h: Harness, value: Any) -> None:
    h.reset()
    docs = [Document(page_content=value, metadata={"source": value})]
    got = Docs(docs).invoke("query")
    assert got == docs and got[0] is docs[0]
    h.check("spanhook.input", "spanhook.output")
    h.reset()
    assert asyncio.run(Docs(docs).ainvoke("query"))[0] is docs[0]
    h.check("spanhook.input", "spanhook.output")


def retrieved(h: Harness, value: Any) -> None:
    """Whatever items a retriever returns, documents or not, reach the caller as they are."""
    h.reset()
    doc = Document(page_content="p")
    got = Docs([value, doc]).invoke("query")
    assert got[0] is value and got[1] is doc
    [span] = h.check("spanhook.input", "spanhook.output")
    assert span.attributes["spanhook.retriever.documents"] == 2  # type: ignore[index]


def metadata_value(h: Harness, value: Any) -> None:
    h.reset()
    metadata: dict[Any, Any] = {"m": value}
    with contextlib.suppress(TypeError):  # unhashable values are no keys
        metadata[value] = "as a key"
    same(Echo().invoke({"x": 1}, metadata=metadata)["y"], 1)
    h.check("spanhook.metadata.m")
    h.reset()
    same(Echo(metadata=metadata).invoke({"x": 2})["y"], 2)  # constructor scope: same policy
    h.check("spanhook.metadata.m")


def custom_event(h: Harness, value: Any) -> None:
    h.reset()

    def emit(x: Any) -> Any:
        dispatch_custom_event("progress", value)
        return x

    same(Echo(emit).invoke({"x": 3})["y"], 3)
    h.check("spanhook.data", "spanhook.event.name")


def agent_action(h: Harness, value: Any) -> None:
    h.reset()

    def act(x: Any) -> Any:
        run = spanhook.current_run()
        assert run is not None
        run.on_agent_action(AgentAction(tool=value, tool_input=value, log=value))
        run.on_agent_finish(AgentFinish(return_values=value, log=value))
        return x

    same(Echo(act).invoke({"x": 4})["y"], 4)
    expected = ["gen_ai.tool.call.arguments", "spanhook.log", "spanhook.output"]
    h.check(*expected, *(["gen_ai.tool.name"] if value is not None else []))


class Hostile(Exception):
    def __str__(self) -> str:
        raise ValueError("__str__ refused")


def error_payload(h: Harness, value: Any) -> None:
    """The user's error reaches the caller unchanged, whatever it carries."""

    def fail(x: Any) -> Any:
        raise Hostile(value)

    h.reset()
    with pytest.raises(Hostile):
        Echo(fail).invoke({"x": value})
    [span] = h.check("spanhook.input", "error.type")
    assert [e.name for e in span.events] == ["exception"]


VALUE_PLACES = [
    chain_io,
    tool_io,
    chat_messages,
    documents,
    retrieved,
    metadata_value,
    custom_event,
    agent_action,
    error_payload,
]


def model_text(h: Harness, text: str) -> None:
    h.reset()
    same(Returns(text).invoke(text), text)
    h.check("gen_ai.input.messages", "gen_ai.output.messages")
    h.reset()
    assert "".join(Returns(text).stream(text)) == text
    h.check("gen_ai.input.messages", "gen_ai.output.messages")
    h.reset()
    same(asyncio.run(Returns(text).ainvoke(text)), text)
    h.check("gen_ai.input.messages", "gen_ai.output.messages")


def retriever_query(h: Harness, text: str) -> None:
    h.reset()
    assert Docs([]).invoke(text) == []
    h.check("spanhook.input", "spanhook.output")


def tool_text(h: Harness, text: str) -> None:
    h.reset()
    same(Tool(name="echo", func=lambda s: s, description="d").run(text), text)
    h.check("gen_ai.tool.call.arguments", "gen_ai.tool.call.result")


def tags_and_names(h: Harness, text: str) -> None:
    h.reset()
    out = Echo().invoke({"x": 1}, config={"tags": [text, text + "2"], "run_name": text})
    same(out["y"], 1)
    h.check("spanhook.tags")
    h.reset()

    def emit(x: Any) -> Any:
        dispatch_custom_event(text, text)
        return x

    same(Echo(emit, tags=[text]).invoke({"x": 2})["y"], 2)
    h.check("spanhook.tags", "spanhook.event.name")


def agent_loop(h: Harness, text: str) -> None:
    h.reset()
    llm = FakeListLLM(
        responses=[
            f"Thought: look\nAction: echo\nAction Input: {text}",
            f"Thought: done\nFinal Answer: {text}",
        ]
    )
    agent = AgentExecutor(llm=llm, tools=[Tool(name="echo", func=lambda s: s, description="d")])
    assert agent.invoke({"input": text})["output"] == text.strip()
    h.check("spanhook.input", "spanhook.output", "gen_ai.tool.call.arguments")


TEXT_PLACES = [model_text, retriever_query, tool_text, tags_and_names, agent_loop]
TEXT_SPECIALS = [HUGE, "lone \ud800 surrogate", "\udfff", "", "https://u:pw-HOSTILE-SECRET@h"]


# -- the properties -------------------------------------------------------------------------


@pytest.mark.parametrize("place", VALUE_PLACES, ids=lambda f: f.__name__)
@prop
@given(value=values)
def test_any_value_anywhere(
    place: Callable[[Harness, Any], None], harness: Harness, value: Any
) -> None:
    place(harness, value)


@pytest.mark.parametrize("place", TEXT_PLACES, ids=lambda f: f.__name__)
@prop
@given(text=text_values)
def test_any_text_anywhere(
    place: Callable[[Harness, str], None], harness: Harness, text: str
) -> None:
    place(harness, text)


@prop
@given(metadata=metadata_maps, tags=tag_lists)
def test_any_metadata_and_tags(harness: Harness, metadata: dict[Any, Any], tags: list[str]) -> None:
    harness.reset()
    out = Echo().invoke({"x": 1}, metadata=metadata, tags=tags)
    same(out["y"], 1)
    [span] = harness.check(*(["spanhook.tags"] if tags else []))
    meta_keys = [k for k in span.attributes or {} if k.startswith("spanhook.metadata.")]
    assert len(meta_keys) >= min(1, len(metadata))  # recorded, never silently dropped


# -- and every listed kind of hostile value in every place, for certain ------------------------


@pytest.mark.parametrize("place", VALUE_PLACES, ids=lambda f: f.__name__)
def test_every_listed_hostile_value_in_every_place(
    place: Callable[[Harness, Any], None], harness: Harness
) -> None:
    for value in SPECIALS:
        place(harness, value)


@pytest.mark.parametrize("place", TEXT_PLACES, ids=lambda f: f.__name__)
def test_every_listed_hostile_text_in_every_place(
    place: Callable[[Harness, str], None], harness: Harness
) -> None:
    for text in TEXT_SPECIALS:
        place(harness, text)


def test_secrets_in_hostile_values_are_not_recorded(harness: Harness) -> None:
    for place in VALUE_PLACES:
        place(harness, {"nested": [Secretive(), "https://user:pw-HOSTILE-SECRET@host/x"]})
        recorded = repr(
            [
                (s.attributes, [e.attributes for e in s.events])
                for s in harness.exporter.get_finished_spans()
            ]
        )
        assert "HOSTILE-SECRET" not in recorded, place.__name__
