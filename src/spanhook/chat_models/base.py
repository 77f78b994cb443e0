"""``BaseChatModel``: models that take messages and answer with an ``AIMessage``.

Implement ``_generate(messages, stop=None, run_manager=None, **kwargs) -> ChatResult`` (or
subclass ``SimpleChatModel`` and implement ``_call(messages) -> str``) and optionally
``_stream`` yielding ``ChatGenerationChunk`` objects. Runs start with
``on_chat_model_start`` and end with ``on_llm_end``, as in LangChain.
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from functools import reduce
from typing import Any

from spanhook.flow import in_worker
from spanhook.language_models import BaseLanguageModel, usage_metadata
from spanhook.primitive import AsyncRunManager, call_hook, hook_result
from spanhook.prompts.base import PromptValue
from spanhook.runtime.run import Run
from spanhook.schema import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    HumanMessage,
    LLMResult,
)
from spanhook.schema.genai import input_message
from spanhook.schema.messages import message_from_role, tool_calls_from_chunks

Messages = list[BaseMessage]


def to_messages(input: Any, where: str) -> Messages:
    """A chat model's input as messages: a string, a ``PromptValue``, a message, or a list of
    message-like items (see :func:`to_message`)."""
    if isinstance(input, str):
        return [HumanMessage(content=input)]
    if isinstance(input, PromptValue):
        return input.to_messages()
    if isinstance(input, BaseMessage):
        return [input]
    if isinstance(input, Sequence):
        return [to_message(m) for m in input]
    raise TypeError(
        f"{where} takes a string, a PromptValue or a list of messages, got {type(input).__name__}"
    )


def to_message(item: Any) -> BaseMessage:
    """One message-like item, as langchain-core reads it: a message; a string (a human
    message); a ``(role, content)`` pair; a dict with ``role`` (or ``type``) and ``content``.
    Anything else is rejected with langchain-core's errors."""
    if isinstance(item, BaseMessage):
        return item
    if isinstance(item, str):
        return HumanMessage(content=item)
    if isinstance(item, Sequence):
        try:
            role, content = item
        except ValueError as e:
            raise NotImplementedError(
                "Message as a sequence must be (role string, template)"
            ) from e
        return message_from_role(role, content)
    if isinstance(item, Mapping):
        fields = dict(item)
        try:
            role = fields.pop("role") if "role" in fields else fields.pop("type")
            content = fields.pop("content") or ""
        except KeyError as e:
            raise ValueError(
                f"Message dict must contain 'role' and 'content' keys, got {dict(item)}"
            ) from e
        return message_from_role(role, content, **fields)
    raise NotImplementedError(f"Unsupported message type: {type(item)}")


class BaseChatModel(BaseLanguageModel[Messages, ChatGenerationChunk, BaseMessage]):
    _run_kind = "chat_model"
    _operation = "chat"

    def _generate(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _generate(messages, stop=None, run_manager=None)"
        )

    async def _agenerate(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: AsyncRunManager | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        run = run_manager.get_sync() if run_manager is not None else None
        return await in_worker(self._invoke_generate, messages, stop, run, kwargs)

    def _stream(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError

    async def _astream(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        raise NotImplementedError
        yield  # pragma: no cover

    # -- plumbing -------------------------------------------------------------------------
    def _invoke_generate(
        self, messages: Messages, stop: list[str] | None, run: Run | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        return call_hook(self._generate, run, messages, stop=stop, **kwargs)

    def _prepare(self, input: Any) -> Messages:
        return to_messages(input, f"{type(self).__name__}")

    def _content_messages(self, prepared: Messages) -> list[dict[str, Any]]:
        return [input_message(m) for m in prepared]

    def _to_llm_result(self, result: ChatResult) -> LLMResult:
        out = dict(result.llm_output or {})
        out.setdefault("model_name", self.get_model_name())
        if "token_usage" not in out and result.generations:
            meta = getattr(result.generations[0].message, "usage_metadata", None)
            if meta:
                out["token_usage"] = {
                    "prompt_tokens": meta.get("input_tokens", 0),
                    "completion_tokens": meta.get("output_tokens", 0),
                    "total_tokens": meta.get("total_tokens", 0),
                }
        return LLMResult(generations=[list(result.generations)], llm_output=out)

    def _generate_one(
        self, prepared: Messages, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> LLMResult:
        result = self._invoke_generate(prepared, stop, run, kwargs)
        return self._to_llm_result(
            hook_result(self, result, ChatResult, "a ChatResult", "_generate")
        )

    async def _agenerate_one(
        self, prepared: Messages, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> LLMResult:
        agenerate = self._agenerate
        result = await call_hook(agenerate, AsyncRunManager(run), prepared, stop=stop, **kwargs)
        return self._to_llm_result(
            hook_result(self, result, ChatResult, "a ChatResult", "_agenerate", "_generate")
        )

    def _implements(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(BaseChatModel, name)

    def _stream_one(
        self, prepared: Messages, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk] | None:
        # called without a run manager, as langchain-core does: stream() reports each chunk
        return self._stream(prepared, stop=stop, **kwargs) if self._implements("_stream") else None

    def _astream_one(
        self, prepared: Messages, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk] | None:
        if self._implements("_astream"):
            return self._astream(prepared, stop=stop, **kwargs)
        return super()._astream_one(prepared, stop, run, **kwargs)

    def _whole_as_chunk(
        self, prepared: Messages, stop: list[str] | None, run: Run, kwargs: dict[str, Any]
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate_one(prepared, stop, run, **kwargs)
        gen = result.generations[0][0]
        msg = getattr(gen, "message", AIMessage(content=gen.text))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content=msg.content, usage_metadata=getattr(msg, "usage_metadata", None)
            ),
            generation_info=gen.generation_info,
        )

    def _result_from_chunks(self, chunks: list[ChatGenerationChunk]) -> LLMResult:
        total = reduce(operator.add, chunks)
        msg = total.message
        tool_calls = list(getattr(msg, "tool_calls", None) or [])
        if not tool_calls and getattr(msg, "tool_call_chunks", None):
            tool_calls = tool_calls_from_chunks(msg.tool_call_chunks)  # type: ignore[attr-defined]
        final = AIMessage(
            content=msg.content,
            usage_metadata=getattr(msg, "usage_metadata", None),
            response_metadata=msg.response_metadata,
            id=msg.id,
            tool_calls=tool_calls,
            additional_kwargs=msg.additional_kwargs,
        )
        gen = ChatGeneration(
            message=final, generation_info=total.generation_info or {"finish_reason": "stop"}
        )
        return self._to_llm_result(ChatResult(generations=[gen]))

    def _output(self, result: LLMResult) -> BaseMessage:
        gen = result.generations[0][0]
        msg = getattr(gen, "message", None)
        return msg if isinstance(msg, BaseMessage) else AIMessage(content=gen.text)

    def _chunk_text(self, chunk: ChatGenerationChunk) -> str:
        return chunk.message.content

    def _stream_item(self, chunk: ChatGenerationChunk) -> BaseMessage:
        return chunk.message

    # LangChain-style helpers
    def predict(self, text: str, **kwargs: Any) -> str:
        return self.invoke(text, **kwargs).content

    async def apredict(self, text: str, **kwargs: Any) -> str:
        return (await self.ainvoke(text, **kwargs)).content

    def predict_messages(self, messages: Messages, **kwargs: Any) -> BaseMessage:
        return self.invoke(messages, **kwargs)

    def __call__(self, messages: Messages, **kwargs: Any) -> BaseMessage:
        return self.invoke(messages, **kwargs)


class SimpleChatModel(BaseChatModel):
    """Implement ``_call(messages, stop=None, run_manager=None) -> str``."""

    def _call(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement _call(messages)")

    def _usage(self, messages: Messages, text: str) -> dict[str, int] | None:
        return None

    def _generate(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = call_hook(self._call, run_manager, messages, stop=stop, **kwargs)
        usage = self._usage(messages, text)
        meta = None
        if usage:
            total = usage["prompt_tokens"] + usage["completion_tokens"]
            meta = usage_metadata({**usage, "total_tokens": total})
        msg = AIMessage(content=text, usage_metadata=meta)
        return ChatResult(
            generations=[ChatGeneration(message=msg, generation_info={"finish_reason": "stop"})]
        )
