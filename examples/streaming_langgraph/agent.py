"""The LangGraph agent of the streaming example: ``create_react_agent`` over an offline,
deterministic tool-calling chat model that streams its words, a calculator and a glossary.

The model thinks aloud before each tool call ("I will use the calculator.") and then streams
its answer, so the page has tokens to show on both model turns. ``delay`` (seconds per
token) slows it down enough to watch.
"""

from __future__ import annotations

import asyncio
import re
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool

from examples.streaming.app import lookup
from spanhook.langchain.demo import calculator

_ARITH = re.compile(r"[-+*/%().\d\s]*\d[-+*/%().\d\s]*")
_TERMS = ("span", "trace", "callback")


@tool
def glossary(term: str) -> str:
    """Explains a tracing term: span, trace or callback."""
    return lookup(term)


class OfflineStreamingChatModel(BaseChatModel):
    """Picks a tool from the question (arithmetic: ``calculator``; a tracing term:
    ``glossary``), says so, calls it, then answers with the tool's result. Deterministic,
    no network; streams word by word, ``delay`` seconds per word."""

    model_name: str = "spanhook-offline-chat"
    delay: float = 0.0
    streaming: bool = True

    @property
    def _llm_type(self) -> str:
        return "spanhook-offline-chat"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, Any]:
        names = [t.name if isinstance(t, BaseTool) else str(t) for t in tools]
        return self.bind(tools=names, **kwargs)

    def reply(self, messages: list[BaseMessage], tools: Sequence[str] | None) -> AIMessage:
        """The whole reply to ``messages``: a tool call with a short thought, or the answer."""
        question = next((str(m.content) for m in messages if m.type == "human"), "")
        results = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
        if results:
            return AIMessage(content=f"The answer is {results[-1]}")
        arithmetic = max(_ARITH.findall(question), key=len, default="").strip()
        term = next((t for t in _TERMS if t in question.lower()), None)
        if tools and "calculator" in tools and arithmetic:
            name, args = "calculator", {"expression": arithmetic}
        elif tools and "glossary" in tools and term:
            name, args = "glossary", {"term": term}
        else:
            return AIMessage(content="I can do arithmetic and explain span, trace or callback.")
        call = {"name": name, "args": args, "id": f"call_{name}_{len(messages)}"}
        return AIMessage(content=f"I will use the {name}.", tool_calls=[call])

    def _chunks(self, reply: AIMessage) -> Iterator[ChatGenerationChunk]:
        words = str(reply.content).split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=word if i == 0 else " " + word,
                    tool_calls=reply.tool_calls if last else [],
                )
            )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self.reply(messages, kwargs.get("tools"))
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(self.reply(messages, kwargs.get("tools"))):
            time.sleep(self.delay)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(self.reply(messages, kwargs.get("tools"))):
            await asyncio.sleep(self.delay)
            yield chunk


def build_agent(delay: float = 0.0) -> Any:
    """One compiled graph for every connection: it holds no per-request state."""
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():  # moved to `langchain.agents`; still LangGraph's own
        warnings.simplefilter("ignore", DeprecationWarning)
        return create_react_agent(
            OfflineStreamingChatModel(delay=delay, streaming=True),
            [calculator, glossary],
            name="streaming-agent",
        )
