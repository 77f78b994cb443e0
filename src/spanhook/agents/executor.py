"""``AgentExecutor``: a ReAct loop. The model proposes an action, the tool runs, the
observation goes back to the model, until it gives a final answer.

The agent run is an ``invoke_agent {name}`` span; each model call and tool call nests under
it. Handlers get ``on_agent_action`` for every action and ``on_agent_finish`` at the end.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from spanhook.chains.base import Chain
from spanhook.chat_models.base import BaseChatModel
from spanhook.flow import Call, Flow, arun_flow, run_flow
from spanhook.language_models import BaseLanguageModel
from spanhook.primitive import PrimitiveOptions
from spanhook.prompts.base import PromptTemplate
from spanhook.runtime.run import Run
from spanhook.schema import AgentAction, AgentFinish
from spanhook.tools.base import Tool
from spanhook.tracing import attributes as attr

if TYPE_CHECKING:
    from typing_extensions import Unpack

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


STOPPED = "Agent stopped due to iteration limit or time limit."
_FINAL_PASS = "\n\nI now need to return a final answer based on the previous steps:"
_STOP = ["\nObservation:"]
Steps = list[tuple[AgentAction, str]]


class AgentExecutor(Chain):
    """``AgentExecutor(llm=..., tools=[...])``; call with ``{"input": question}`` or ``run(q)``.

    The loop stops as LangChain's does: after ``max_iterations`` steps or once
    ``max_execution_time`` seconds have passed (checked before each step), with
    ``early_stopping_method`` ``"force"`` (LangChain's stop message) or ``"generate"`` (one
    last model call for a final answer). ``return_intermediate_steps=True`` adds the
    ``(action, observation)`` pairs to the outputs.
    """

    _run_kind = "agent"

    def __init__(
        self,
        *,
        llm: BaseLanguageModel[Any, Any, Any],
        tools: Sequence[Tool],
        max_iterations: int | None = 10,
        max_execution_time: float | None = None,
        early_stopping_method: Literal["force", "generate"] = "force",
        return_intermediate_steps: bool = False,
        handle_parsing_errors: bool = False,
        prompt: PromptTemplate | None = None,
        **options: Unpack[PrimitiveOptions],
    ) -> None:
        super().__init__(**options)
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
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1 or None, got {max_iterations}")
        if max_execution_time is not None and not max_execution_time > 0:
            raise ValueError(f"max_execution_time must be > 0 or None, got {max_execution_time}")
        if early_stopping_method not in ("force", "generate"):
            raise ValueError(
                "early_stopping_method should be one of `force` or `generate`, "
                f"got {early_stopping_method!r}"
            )
        self.llm = llm
        self.tools = list(tools)
        self.max_iterations = max_iterations
        self.max_execution_time = max_execution_time
        self.early_stopping_method = early_stopping_method
        self.return_intermediate_steps = return_intermediate_steps
        self.handle_parsing_errors = handle_parsing_errors
        self.prompt = prompt or PromptTemplate.from_template(REACT_TEMPLATE)
        self.input_keys = ["input"]
        self.output_keys = (
            ["output", "intermediate_steps"] if return_intermediate_steps else ["output"]
        )
        self._by_name = {t.name: t for t in tools}
        self._colors = {t.name: _TOOL_COLORS[i % len(_TOOL_COLORS)] for i, t in enumerate(tools)}

    def get_name(self) -> str:
        return self.name or "AgentExecutor"

    def _span_name(self) -> str:
        return f"invoke_agent {self.get_name()}"

    def _span_attributes(self) -> dict[str, Any]:
        return {attr.GEN_AI_OPERATION_NAME: "invoke_agent", attr.GEN_AI_AGENT_NAME: self.get_name()}

    # -- no-I/O steps -----------------------------------------------------------------------
    @staticmethod
    def _scratchpad(steps: Steps) -> str:
        return "".join(f"{a.log}\nObservation: {o}\nThought:" for a, o in steps)

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

    def _should_continue(self, iterations: int, elapsed: float) -> bool:
        if self.max_iterations is not None and iterations >= self.max_iterations:
            return False
        return self.max_execution_time is None or elapsed < self.max_execution_time

    def _no_tool(self, action: AgentAction) -> str:
        if action.tool == "_Exception":
            return str(action.tool_input)
        return f"{action.tool} is not a valid tool, try one of [{', '.join(self._by_name)}]."

    # -- the loop: one algorithm, driven by _call (calls) and _acall (awaits) ----------------
    def _ask(self, question: str, scratchpad: str) -> Flow[str]:
        """One model call with the agent's prompt: the text of its answer."""
        text = self.prompt.format(
            tools="\n".join(f"{t.name}: {t.description}" for t in self.tools),
            tool_names=", ".join(t.name for t in self.tools),
            input=question,
            agent_scratchpad=scratchpad,
        )
        prompt = [("human", text)] if isinstance(self.llm, BaseChatModel) else text
        output = yield Call(self.llm, "invoke", prompt, stop=_STOP)
        return output.content if hasattr(output, "content") else str(output)

    def _flow(self, inputs: dict[str, Any], run: Run) -> Flow[dict[str, Any]]:
        question = str(inputs["input"])
        steps: Steps = []
        started = time.monotonic()
        iterations = 0
        while self._should_continue(iterations, time.monotonic() - started):
            step = self._step((yield from self._ask(question, self._scratchpad(steps))))
            if isinstance(step, AgentFinish):
                return (yield from self._return(run, step, steps))
            yield Call(run, "on_agent_action", step, color="green")
            tool = self._by_name.get(step.tool)
            if tool is None:
                observation = self._no_tool(step)
            else:
                out = yield Call(
                    tool,
                    "run",
                    step.tool_input,
                    color=self._colors[tool.name],
                    tool_call_id=f"call_{iterations + 1}",
                    observation_prefix="Observation: ",
                    llm_prefix="Thought:",
                )
                observation = str(out)
            steps.append((step, observation))
            if tool is not None and tool.return_direct:
                finish = AgentFinish(return_values={"output": observation}, log="")
                return (yield from self._return(run, finish, steps))
            iterations += 1
        stopped = yield from self._stopped(question, steps)
        return (yield from self._return(run, stopped, steps))

    def _stopped(self, question: str, steps: Steps) -> Flow[AgentFinish]:
        """LangChain's ``return_stopped_response``: the stop message, or one last pass."""
        if self.early_stopping_method == "force":
            return AgentFinish(return_values={"output": STOPPED}, log="")
        text = yield from self._ask(question, self._scratchpad(steps) + _FINAL_PASS)
        try:
            parsed = parse(text)
        except OutputParserError:
            parsed = None
        if isinstance(parsed, AgentFinish):
            return parsed
        return AgentFinish(return_values={"output": text}, log=text)

    def _return(self, run: Run, finish: AgentFinish, steps: Steps) -> Flow[dict[str, Any]]:
        yield Call(run, "on_agent_finish", finish, color="green", verbose=self.verbose)
        outputs = dict(finish.return_values)
        if self.return_intermediate_steps:
            outputs["intermediate_steps"] = steps
        return outputs

    def _call(self, inputs: dict[str, Any], run_manager: Run | None = None) -> dict[str, Any]:
        assert run_manager is not None
        return run_flow(self._flow(inputs, run_manager))

    async def _acall(
        self, inputs: dict[str, Any], run_manager: Run | None = None
    ) -> dict[str, Any]:
        assert run_manager is not None
        return await arun_flow(self._flow(inputs, run_manager))


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
