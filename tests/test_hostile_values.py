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
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

import spanhook
from hostile import (
    SPECIALS,
    TEXT_SPECIALS,
    Chat,
    Docs,
    Echo,
    Harness,
    Returns,
    Secretive,
    metadata_maps,
    same,
    tag_lists,
    text_values,
    values,
)
from spanhook.agents import AgentExecutor
from spanhook.callbacks import dispatch_custom_event
from spanhook.llms import FakeListLLM
from spanhook.schema import AgentAction, AgentFinish, Document, HumanMessage
from spanhook.tools import Tool


@pytest.fixture
def harness() -> Iterator[Harness]:
    yield Harness()


prop = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


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
