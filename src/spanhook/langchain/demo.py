"""``spanhook demo --langchain``: the offline agent as a LangGraph app (``create_react_agent``)
traced by ``spanhook.langchain``: a deterministic tool-calling chat model, a calculator tool,
verbose output and the request's span tree."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool

from spanhook.llms.offline import evaluate

_ARITH = re.compile(r"[-+*/%().\d\s]*\d[-+*/%().\d\s]*")


@tool
def calculator(expression: str) -> str:
    """Evaluates an arithmetic expression such as 12 * (3 + 4)."""
    return str(evaluate(expression))


class OfflineToolChatModel(BaseChatModel):
    """Calls the calculator for the arithmetic in the question, then answers with its result
    (deterministic, no network). Reports token usage like a provider."""

    model_name: str = "spanhook-offline-chat"

    @property
    def _llm_type(self) -> str:
        return "spanhook-offline-chat"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, Any]:
        names = [t.name if isinstance(t, BaseTool) else str(t) for t in tools]
        return self.bind(tools=names, **kwargs)

    def _reply(self, messages: list[BaseMessage], tools: list[str] | None) -> AIMessage:
        question = next((str(m.content) for m in messages if m.type == "human"), "")
        usage = {"input_tokens": sum(len(str(m.content).split()) for m in messages)}
        results = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
        match = max(_ARITH.findall(question), key=len, default="").strip()
        if tools and "calculator" in tools and match and not results:
            call = {"name": "calculator", "args": {"expression": match}, "id": "call_calc_1"}
            return AIMessage(
                content="",
                tool_calls=[call],
                usage_metadata={**usage, "output_tokens": 4, "total_tokens": 0},
            )
        text = f"The answer is {results[-1]}." if results else "I can only do arithmetic."
        n_out = len(text.split())
        return AIMessage(
            content=text,
            usage_metadata={**usage, "output_tokens": n_out, "total_tokens": 0},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(
            generations=[ChatGeneration(message=self._reply(messages, kwargs.get("tools")))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages, kwargs.get("tools"))
        if reply.tool_calls:
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="", tool_calls=reply.tool_calls, usage_metadata=reply.usage_metadata
                )
            )
            return
        words = str(reply.content).split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=word if i == 0 else " " + word,
                    usage_metadata=reply.usage_metadata if last else None,
                )
            )


def build_graph() -> Any:
    """The LangGraph agent: ``create_react_agent(OfflineToolChatModel(), [calculator])``."""
    import warnings

    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():  # moved to `langchain.agents`; still LangGraph's own
        warnings.simplefilter("ignore", DeprecationWarning)
        return create_react_agent(OfflineToolChatModel(), [calculator], name="demo-agent")


def run(question: str, out: TextIO) -> tuple[str, str | None]:
    """Answer ``question``; return the answer and the request's trace id."""
    from langchain_core.callbacks import BaseCallbackHandler

    import spanhook.langchain
    from spanhook.callbacks import StdOutCallbackHandler
    from spanhook.langchain.tracer import TRACER

    trace_ids: list[str] = []

    class TraceId(BaseCallbackHandler):
        """Reads the request's trace id from its root run (still open at its end event)."""

        def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
            run = TRACER.runs.get(run_id)
            if kwargs.get("parent_run_id") is None and run is not None:
                trace_ids.append(run.trace_id)

    spanhook.langchain.instrument(verbose=True)
    try:
        graph = build_graph()
        result = graph.invoke(
            {"messages": [("human", question)]},
            {"callbacks": [StdOutCallbackHandler(file=out), TraceId()]},
        )
    finally:
        spanhook.langchain.uninstrument()
    answer = str(result["messages"][-1].content)
    return answer, trace_ids[0] if trace_ids else None
