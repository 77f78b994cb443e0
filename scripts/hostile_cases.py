"""Count what hostile values do to an app, place by place, with content capture on.

Every listed kind of hostile value (tests/test_hostile_values.py: SPECIALS, TEXT_SPECIALS) goes
through every place a value is recorded, via the public primitives. For each case: did an
error reach the caller, did a started span never end, did the caller lose its own result,
did a span fail to encode as OTLP (what the exporter would send), did an attribute exceed the
size limit. Run: ``python scripts/hostile_cases.py`` (from the repository root).
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

import spanhook
from hostile import (
    LIMIT,
    SPECIALS,
    TEXT_SPECIALS,
    Chat,
    Docs,
    Echo,
    Harness,
    Returns,
    exported_attributes,
    recorded_attributes,
)
from spanhook.callbacks import dispatch_custom_event
from spanhook.schema import AgentAction, Document, HumanMessage
from spanhook.tools import Tool


def chain_input(v: Any) -> tuple[Any, Any]:
    return Echo().invoke({"x": v})["x"], v


def chain_output(v: Any) -> tuple[Any, Any]:
    return Echo(lambda _: v).invoke({"x": 1})["y"], v


def tool_io(v: Any) -> tuple[Any, Any]:
    return Tool(name="echo", func=lambda x: x, description="d").run({"x": v}), v


def chat_message(v: Any) -> tuple[Any, Any]:
    return Chat().invoke([HumanMessage(content=v)]).content, "fine"


def document(v: Any) -> tuple[Any, Any]:
    docs = [Document(page_content=v, metadata={"m": v})]
    return Docs(docs).invoke("q"), docs


def retrieved(v: Any) -> tuple[Any, Any]:
    return Docs([v]).invoke("q")[0], v


def metadata(v: Any) -> tuple[Any, Any]:
    meta: dict[Any, Any] = {"m": v}
    with contextlib.suppress(TypeError):  # the value as a key too, when it can be one
        meta[v] = "as a key"
    return Echo().invoke({"x": 1}, metadata=meta)["y"], 1


def custom_event(v: Any) -> tuple[Any, Any]:
    def emit(x: Any) -> Any:
        dispatch_custom_event("e", v)
        return x

    return Echo(emit).invoke({"x": 1})["y"], 1


def agent_action(v: Any) -> tuple[Any, Any]:
    def act(x: Any) -> Any:
        run = spanhook.current_run()
        assert run is not None
        run.on_agent_action(AgentAction(tool=v, tool_input=v, log=v))
        return x

    return Echo(act).invoke({"x": 1})["y"], 1


def prompt_and_generation(t: str) -> tuple[Any, Any]:
    return Returns(t).invoke(t), t


def retriever_query(t: str) -> tuple[Any, Any]:
    return Docs([]).invoke(t), []


def tags(t: str) -> tuple[Any, Any]:
    return Echo().invoke({"x": 1}, tags=[t])["y"], 1


VALUE_PLACES: list[Callable[[Any], tuple[Any, Any]]] = [
    chain_input,
    chain_output,
    tool_io,
    chat_message,
    document,
    retrieved,
    metadata,
    custom_event,
    agent_action,
]
TEXT_PLACES: list[Callable[[str], tuple[Any, Any]]] = [prompt_and_generation, retriever_query, tags]


def outcome(h: Harness, place: Callable[[Any], tuple[Any, Any]], value: Any) -> list[str]:
    h.reset()
    found: list[str] = []
    try:
        got, expected = place(value)
        if not (got is expected or (got == expected) is True):
            found.append("lost the result")
    except Exception:
        found.append("raised into the caller")
    if h.lifecycle.started != h.lifecycle.ended:
        found.append("span never ended")
    spans = list(h.exporter.get_finished_spans())
    try:
        if exported_attributes(encode_spans(spans)) < recorded_attributes(spans):
            found.append("attribute dropped at export")
    except Exception:
        found.append("span not exportable")
    for span in spans:
        values = list((span.attributes or {}).values())
        values += [v for e in span.events for v in (e.attributes or {}).values()]
        if any(isinstance(v, str) and len(v) > LIMIT for v in values):
            found.append("attribute over the limit")
            break
    return found


def main() -> None:
    h = Harness()
    counts: Counter[str] = Counter()
    cases = 0
    for places, pool in ((VALUE_PLACES, SPECIALS), (TEXT_PLACES, TEXT_SPECIALS)):
        for place in places:
            for value in pool:
                cases += 1
                problems = outcome(h, place, value)
                counts.update(problems)
                counts["bad cases"] += bool(problems)
    print(f"{cases} hostile cases, content capture on, limit {LIMIT} chars:")
    for what in (
        "bad cases",
        "raised into the caller",
        "span never ended",
        "lost the result",
        "span not exportable",
        "attribute dropped at export",
        "attribute over the limit",
    ):
        print(f"  {what:28s} {counts[what]}")


if __name__ == "__main__":
    main()
