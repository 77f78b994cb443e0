"""``AgentExecutor``: a ReAct loop. The model proposes an action, the tool runs, the
observation goes back to the model, until it gives a final answer.

The agent run is an ``invoke_agent {name}`` span; each model call and tool call nests under
it. Handlers get ``on_agent_action`` for every action and ``on_agent_finish`` at the end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from spanhook.chains.base import Chain
from spanhook.chat_models.base import BaseChatModel
from spanhook.language_models import BaseLanguageModel
from spanhook.prompts.base import PromptTemplate
from spanhook.schema import AgentAction, AgentFinish
from spanhook.tools.base import Tool
from spanhook.tracing import attributes as attr
from spanhook.tracing.run import Run

REACT_TEMPLATE = """Answer the following question as well as you can. You have access to the following tools:

{tools}

Use the following format:

Question: the input question you must answer
Thought: you should always think about what to do
Action: the action to take, one of [{tool_names}]
Action Input: the input to the action
Observation: the result of the action
... (this Thought/Action/Action Input/Observation can repeat N times)
Thought: I now know the final answer
Final Answer: the final answer to the original input question

Begin!

Question: {input}
Thought:{agent_scratchpad}"""

_FINAL = re.compile(r"Final Answer:\s*(.*)", re.S)
_ACTION = re.compile(r"Action\s*:\s*(.*?)\s*\n\s*Action\s*Input\s*:\s*(.*)", re.S)
_TOOL_COLORS = ["blue", "yellow", "pink", "red"]


class OutputParserError(ValueError):
    """The model's answer was neither an action nor a final answer."""


def parse(text: str) -> AgentAction | AgentFinish:
    """Read a ReAct step from model output."""
    action = _ACTION.search(text)
    final = _FINAL.search(text)
    if final and not action:
        return AgentFinish(return_values={"output": final.group(1).strip()}, log=text)
    if action:
        tool_input = action.group(2).strip().split("\nObservation", 1)[0].strip().strip('"')
        return AgentAction(tool=action.group(1).strip(), tool_input=tool_input, log=text)
    raise OutputParserError(
        f"could not parse model output as an action or a final answer: {text!r}"
    )


class AgentExecutor(Chain):
    """``AgentExecutor(llm=..., tools=[...])``; call with ``{"input": question}`` or ``run(q)``."""

    _run_kind = "agent"

    def __init__(
        self,
        *,
        llm: BaseLanguageModel[Any, Any, Any],
        tools: Sequence[Tool],
        max_iterations: int = 10,
        handle_parsing_errors: bool = False,
        prompt: PromptTemplate | None = None,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        verbose: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(
            callbacks=callbacks, tags=tags, metadata=metadata, verbose=verbose, name=name
        )
        if not isinstance(llm, BaseLanguageModel):
            raise TypeError(
                f"AgentExecutor llm must be a spanhook LLM or chat model, got {type(llm).__name__}"
            )
        if not tools:
            raise ValueError("AgentExecutor needs at least one tool")
        names = [t.name for t in tools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"AgentExecutor got several tools named {dupes}")
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
        self.llm = llm
        self.tools = list(tools)
        self.max_iterations = max_iterations
        self.handle_parsing_errors = handle_parsing_errors
        self.prompt = prompt or PromptTemplate.from_template(REACT_TEMPLATE)
        self.input_keys = ["input"]
        self.output_keys = ["output"]
        self._by_name = {t.name: t for t in tools}
        self._colors = {t.name: _TOOL_COLORS[i % len(_TOOL_COLORS)] for i, t in enumerate(tools)}

    def get_name(self) -> str:
        return self.name or "AgentExecutor"

    def _span_name(self) -> str:
        return f"invoke_agent {self.get_name()}"

    def _span_attributes(self) -> dict[str, Any]:
        return {attr.GEN_AI_OPERATION_NAME: "invoke_agent", attr.GEN_AI_AGENT_NAME: self.get_name()}

    def _prompt(self, question: str, scratchpad: str) -> str:
        return self.prompt.format(
            tools="\n".join(f"{t.name}: {t.description}" for t in self.tools),
            tool_names=", ".join(t.name for t in self.tools),
            input=question,
            agent_scratchpad=scratchpad,
        )

    @staticmethod
    def _text(output: Any) -> str:
        return output.content if hasattr(output, "content") else str(output)

    def _model_input(self, prompt: str) -> Any:
        return [("human", prompt)] if isinstance(self.llm, BaseChatModel) else prompt

    def _step(self, text: str) -> AgentAction | AgentFinish:
        try:
            return parse(text)
        except OutputParserError:
            if not self.handle_parsing_errors:
                raise
            return AgentAction(
                tool="_Exception",
                tool_input="Invalid format: give an Action or a Final Answer",
                log=text,
            )

    def _observe(self, action: AgentAction, call_id: str, run: Run) -> tuple[str, bool]:
        tool = self._by_name.get(action.tool)
        if tool is None:
            if action.tool == "_Exception":
                return str(action.tool_input), False
            return (
                f"{action.tool} is not a valid tool, try one of [{', '.join(self._by_name)}].",
                False,
            )
        out = tool.run(
            action.tool_input,
            color=self._colors[tool.name],
            tool_call_id=call_id,
            observation_prefix="Observation: ",
            llm_prefix="Thought:",
        )
        return str(out), tool.return_direct

    def _call(self, inputs: dict[str, Any], run_manager: Run | None = None) -> dict[str, Any]:
        assert run_manager is not None
        run = run_manager
        question = str(inputs["input"])
        scratchpad = ""
        for i in range(self.max_iterations):
            text = self._text(
                self.llm.invoke(
                    self._model_input(self._prompt(question, scratchpad)), stop=["\nObservation:"]
                )
            )
            step = self._step(text)
            if isinstance(step, AgentFinish):
                run.on_agent_finish(step, color="green", verbose=self.verbose)
                return dict(step.return_values)
            run.on_agent_action(step, color="green")
            observation, direct = self._observe(step, f"call_{i + 1}", run)
            if direct:
                finish = AgentFinish(return_values={"output": observation}, log="")
                run.on_agent_finish(finish, color="green", verbose=self.verbose)
                return {"output": observation}
            scratchpad += f"{step.log}\nObservation: {observation}\nThought:"
        finish = AgentFinish(
            return_values={"output": "Agent stopped due to iteration limit or time limit."}, log=""
        )
        run.on_agent_finish(finish, color="green", verbose=self.verbose)
        return dict(finish.return_values)

    async def _aobserve(self, action: AgentAction, call_id: str) -> tuple[str, bool]:
        tool = self._by_name.get(action.tool)
        if tool is None:
            if action.tool == "_Exception":
                return str(action.tool_input), False
            return (
                f"{action.tool} is not a valid tool, try one of [{', '.join(self._by_name)}].",
                False,
            )
        out = await tool.arun(
            action.tool_input,
            color=self._colors[tool.name],
            tool_call_id=call_id,
            observation_prefix="Observation: ",
            llm_prefix="Thought:",
        )
        return str(out), tool.return_direct

    async def _acall(
        self, inputs: dict[str, Any], run_manager: Run | None = None
    ) -> dict[str, Any]:
        assert run_manager is not None
        run = run_manager
        question = str(inputs["input"])
        scratchpad = ""
        for i in range(self.max_iterations):
            out = await self.llm.ainvoke(
                self._model_input(self._prompt(question, scratchpad)), stop=["\nObservation:"]
            )
            step = self._step(self._text(out))
            if isinstance(step, AgentFinish):
                await run.aon_agent_finish(step, color="green", verbose=self.verbose)
                return dict(step.return_values)
            await run.aon_agent_action(step, color="green")
            observation, direct = await self._aobserve(step, f"call_{i + 1}")
            if direct:
                finish = AgentFinish(return_values={"output": observation}, log="")
                await run.aon_agent_finish(finish, color="green", verbose=self.verbose)
                return {"output": observation}
            scratchpad += f"{step.log}\nObservation: {observation}\nThought:"
        finish = AgentFinish(
            return_values={"output": "Agent stopped due to iteration limit or time limit."}, log=""
        )
        await run.aon_agent_finish(finish, color="green", verbose=self.verbose)
        return dict(finish.return_values)


def calculator_tool() -> Tool:
    """A safe arithmetic tool (numbers and + - * / % ** only)."""
    from spanhook.llms.offline import evaluate

    def calculator(expression: str) -> str:
        return str(evaluate(expression))

    return Tool(
        name="calculator",
        func=calculator,
        description="Evaluates an arithmetic expression such as 12 * (3 + 4).",
    )
