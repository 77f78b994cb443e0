"""A tool error handled as the tool's result is still a failed tool call on its span.

With ``handle_tool_error`` (spanhook's ``Tool`` and langchain-core's tools alike), a
``ToolException`` becomes the tool's result: the model reads it and the agent goes on, and
handlers get ``on_tool_end``, as langchain-core delivers it. The span must still say that
the call failed, or a failed tool call looks healthy in every trace viewer: ``error.type``
``tool_error`` (OTel's convention for a tool result reporting an error), ERROR status whose
description is the error text, and no ``exception`` event (nothing escaped).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import StructuredTool
from langchain_core.tools import ToolException as LCToolException
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from helpers import Recorder
from spanhook.agents import AgentExecutor
from spanhook.llms import OfflineLLM
from spanhook.tools import Tool, ToolException, tool

pytest_plugins = ["lc_fixtures"]


def _no_stock(item: str) -> str:
    raise ToolException(f"no stock data for {item}")


def _broken(item: str) -> str:
    raise KeyError(item)


def _tool_span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == f"execute_tool {name}"]
    return span


def _assert_tool_error(span: ReadableSpan, description: str) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == description
    assert (span.attributes or {})["error.type"] == "tool_error"
    assert [e.name for e in span.events if e.name == "exception"] == []


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (True, "no stock data for cats"),
        ("the stock service is down, try later", "the stock service is down, try later"),
        (lambda e: f"sorry: {e}", "sorry: no stock data for cats"),
    ],
    ids=["true", "string", "callable"],
)
@pytest.mark.parametrize("mode", ["run", "arun"])
def test_a_handled_tool_exception_is_the_result_and_a_failed_call_on_the_span(
    handler: Any, expected: str, mode: str, memory_exporter: InMemorySpanExporter
) -> None:
    stock = Tool("stock", _no_stock, "Stock levels.", handle_tool_error=handler)
    rec = Recorder()
    if mode == "run":
        out = stock.run("cats", callbacks=[rec])
    else:
        out = asyncio.run(stock.arun("cats", callbacks=[rec]))

    assert out == expected
    assert rec.names() == ["on_tool_start", "on_tool_end"]
    assert rec.of("on_tool_end")[0].args[0] == expected
    _assert_tool_error(_tool_span(memory_exporter, "stock"), expected)


def test_without_handle_tool_error_a_tool_exception_propagates(
    memory_exporter: InMemorySpanExporter,
) -> None:
    stock = Tool("stock", _no_stock, "Stock levels.")
    rec = Recorder()
    with pytest.raises(ToolException, match="no stock data for cats"):
        stock.run("cats", callbacks=[rec])
    assert rec.names() == ["on_tool_start", "on_tool_error"]
    span = _tool_span(memory_exporter, "stock")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "ToolException"


def test_other_exceptions_propagate_even_when_tool_errors_are_handled(
    memory_exporter: InMemorySpanExporter,
) -> None:
    broken = Tool("broken", _broken, "Always fails.", handle_tool_error=True)
    with pytest.raises(KeyError):
        broken.run("cats")
    assert (_tool_span(memory_exporter, "broken").attributes or {})["error.type"] == "KeyError"


def test_handle_tool_error_of_another_type_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"tool 'stock': handle_tool_error must be .* got int"):
        Tool("stock", _no_stock, "Stock levels.", handle_tool_error=1)  # type: ignore[arg-type]


def test_the_decorator_takes_handle_tool_error(memory_exporter: InMemorySpanExporter) -> None:
    @tool(handle_tool_error="no such item")
    async def lookup(item: str) -> str:
        """Look an item up."""
        raise ToolException(item)

    assert asyncio.run(lookup.ainvoke("cats")) == "no such item"
    _assert_tool_error(_tool_span(memory_exporter, "lookup"), "no such item")


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_an_agent_reads_the_handled_error_and_goes_on(
    mode: str, memory_exporter: InMemorySpanExporter
) -> None:
    def calculator(expression: str) -> str:
        raise ToolException(f"cannot evaluate {expression}")

    calc = Tool("calculator", calculator, "Arithmetic.", handle_tool_error=True)
    agent = AgentExecutor(llm=OfflineLLM(), tools=[calc])
    rec = Recorder()
    request = {"input": "What is 12 * 7?"}
    if mode == "invoke":
        out = agent.invoke(request, callbacks=[rec])
    else:
        out = asyncio.run(agent.ainvoke(request, callbacks=[rec]))

    assert "cannot evaluate 12 * 7" in str(out)
    assert rec.of("on_tool_error") == []
    assert rec.of("on_chain_error") == []
    assert len(rec.of("on_agent_finish")) == 1
    _assert_tool_error(_tool_span(memory_exporter, "calculator"), "cannot evaluate 12 * 7")
    others = [s for s in memory_exporter.get_finished_spans() if "calculator" not in s.name]
    assert others and all(s.status.status_code is StatusCode.UNSET for s in others)


def _lc_no_stock(item: str) -> str:
    """Stock levels."""
    raise LCToolException(f"no stock data for {item}")


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_langchain_tool_call_returning_an_error_message_is_a_failed_call(
    mode: str, traced: InMemorySpanExporter
) -> None:
    stock = StructuredTool.from_function(_lc_no_stock, name="stock", handle_tool_error=True)
    call = {"name": "stock", "args": {"item": "cats"}, "id": "call_3", "type": "tool_call"}
    out = stock.invoke(call) if mode == "invoke" else asyncio.run(stock.ainvoke(call))

    assert isinstance(out, ToolMessage) and out.status == "error"
    span = _tool_span(traced, "stock")
    _assert_tool_error(span, "no stock data for cats")
    assert (span.attributes or {})["gen_ai.tool.call.id"] == "call_3"

    # the same tool in spanhook's own primitives records the same
    native = Tool("stock", _no_stock, "Stock levels.", handle_tool_error=True)
    native.run("cats")
    spans = [s for s in traced.get_finished_spans() if s.name == "execute_tool stock"]
    assert [(s.status.description, (s.attributes or {})["error.type"]) for s in spans] == [
        ("no stock data for cats", "tool_error"),
        ("no stock data for cats", "tool_error"),
    ]


def test_a_langchain_tool_returning_normally_is_not_marked(traced: InMemorySpanExporter) -> None:
    stock = StructuredTool.from_function(lambda item: f"{item}: 3", name="stock", description="x")
    call = {"name": "stock", "args": {"item": "cats"}, "id": "call_4", "type": "tool_call"}
    assert stock.invoke(call).status == "success"
    span = _tool_span(traced, "stock")
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in (span.attributes or {})
