"""The agent loop stops as LangChain's ``AgentExecutor`` does, sync and async:
``max_iterations`` and ``max_execution_time`` end it with ``early_stopping_method`` ``force``
(LangChain's stop message) or ``generate`` (one last model call) instead of raising, and
``return_intermediate_steps=True`` returns the ``(action, observation)`` pairs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from helpers import Recorder
from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.llms import FakeListLLM
from spanhook.schema import AgentAction, AgentFinish
from spanhook.tools import Tool

ACT = "Thought: compute\nAction: calculator\nAction Input: 1 + 1"
STOPPED = "Agent stopped due to iteration limit or time limit."


def _invoke(agent: AgentExecutor, mode: str, rec: Recorder) -> dict[str, Any]:
    if mode == "sync":
        return agent.invoke({"input": "q"}, callbacks=[rec])
    return asyncio.run(agent.ainvoke({"input": "q"}, callbacks=[rec]))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_max_iterations_force_returns_the_stop_message(
    mode: str, memory_exporter: InMemorySpanExporter
) -> None:
    rec = Recorder()
    agent = AgentExecutor(llm=FakeListLLM([ACT]), tools=[calculator_tool()], max_iterations=3)
    out = _invoke(agent, mode, rec)
    assert out == {"input": "q", "output": STOPPED}
    assert rec.names().count("on_agent_action") == 3
    assert rec.names().count("on_tool_start") == 3
    (finish,) = rec.of("on_agent_finish")
    assert finish.args[0] == AgentFinish(return_values={"output": STOPPED}, log="")
    assert rec.names()[-1] == "on_chain_end"
    agent_span = next(
        s for s in memory_exporter.get_finished_spans() if s.name.startswith("invoke")
    )
    assert agent_span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_max_iterations_generate_makes_one_last_model_call(mode: str) -> None:
    final = "I now know the final answer\nFinal Answer: 2"
    llm = FakeListLLM([ACT, ACT, final])
    rec = Recorder()
    agent = AgentExecutor(
        llm=llm, tools=[calculator_tool()], max_iterations=2, early_stopping_method="generate"
    )
    out = _invoke(agent, mode, rec)
    assert out["output"] == "2"
    assert rec.names().count("on_llm_start") == 3
    last_prompt = rec.of("on_llm_start")[-1].args[1][0]
    assert last_prompt.endswith(
        "\nThought:\n\nI now need to return a final answer based on the previous steps:"
    )
    assert last_prompt.count("Observation: 2") == 2
    (finish,) = rec.of("on_agent_finish")
    assert finish.args[0].log == final


def test_generate_without_a_final_answer_returns_the_whole_text() -> None:
    agent = AgentExecutor(
        llm=FakeListLLM([ACT, "just some words"]),
        tools=[calculator_tool()],
        max_iterations=1,
        early_stopping_method="generate",
    )
    assert agent.run("q") == "just some words"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_max_execution_time_stops_the_loop_between_steps(mode: str) -> None:
    def slow(expression: str) -> str:
        time.sleep(0.2)
        return "2"

    tool = Tool(name="calculator", func=slow, description="slow arithmetic")
    rec = Recorder()
    agent = AgentExecutor(
        llm=FakeListLLM([ACT]), tools=[tool], max_iterations=None, max_execution_time=0.05
    )
    out = _invoke(agent, mode, rec)
    assert out["output"] == STOPPED
    assert rec.names().count("on_tool_start") == 1  # checked before each step, as LangChain


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_return_intermediate_steps(mode: str) -> None:
    rec = Recorder()
    agent = AgentExecutor(
        llm=FakeListLLM([ACT, "Final Answer: 2"]),
        tools=[calculator_tool()],
        return_intermediate_steps=True,
    )
    out = _invoke(agent, mode, rec)
    assert out["output"] == "2"
    ((action, observation),) = out["intermediate_steps"]
    assert action == AgentAction(tool="calculator", tool_input="1 + 1", log=ACT)
    assert observation == "2"
    assert rec.of("on_chain_end")[0].args[0]["intermediate_steps"] == out["intermediate_steps"]


def test_bad_stopping_settings_are_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="early_stopping_method"):
        AgentExecutor(
            llm=FakeListLLM(["x"]),
            tools=[calculator_tool()],
            early_stopping_method="later",  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="max_execution_time"):
        AgentExecutor(llm=FakeListLLM(["x"]), tools=[calculator_tool()], max_execution_time=0)
    with pytest.raises(ValueError, match="max_iterations"):
        AgentExecutor(llm=FakeListLLM(["x"]), tools=[calculator_tool()], max_iterations=0)
