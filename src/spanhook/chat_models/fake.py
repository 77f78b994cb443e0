"""Fake and offline chat models."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from spanhook.chat_models.base import Messages, SimpleChatModel
from spanhook.language_models import ModelOptions, usage_metadata
from spanhook.llms.fake import ResponseCycle
from spanhook.llms.offline import MODEL_NAME, answer, apaced, paced, token_usage, tokenize
from spanhook.runtime.run import Run
from spanhook.schema import AIMessageChunk, ChatGenerationChunk, get_buffer_string

if TYPE_CHECKING:
    from typing_extensions import Unpack


class FakeListChatModel(SimpleChatModel):
    """Answers with ``responses`` in turn; streams character by character."""

    model_name = "fake-list-chat"
    span_kind = SpanKind.INTERNAL

    def __init__(
        self,
        responses: Sequence[str],
        *,
        sleep: float = 0.0,
        **options: Unpack[ModelOptions],
    ) -> None:
        super().__init__(**options)
        self._cycle = ResponseCycle(responses, "FakeListChatModel")
        self.responses = self._cycle.responses
        self.sleep = sleep

    def _call(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> str:
        if self.sleep:
            time.sleep(self.sleep)
        return self._cycle.next()

    def _stream(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for ch in self._call(messages, stop):
            yield ChatGenerationChunk(message=AIMessageChunk(content=ch))

    async def _astream(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.sleep:
            await asyncio.sleep(self.sleep)
        for ch in self._cycle.next():
            yield ChatGenerationChunk(message=AIMessageChunk(content=ch))


class OfflineChatModel(SimpleChatModel):
    """The offline model behind a chat interface (deterministic, streams word by word)."""

    model_name = MODEL_NAME + "-chat"
    span_kind = SpanKind.INTERNAL

    def __init__(
        self,
        *,
        delay: float = 0.0,
        **options: Unpack[ModelOptions],
    ) -> None:
        super().__init__(**options)
        self.delay = delay

    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": 0.0}

    def _text(self, messages: Messages, stop: list[str] | None) -> str:
        return answer(get_buffer_string(messages), stop)

    def _usage(self, messages: Messages, text: str) -> dict[str, int]:
        return token_usage(get_buffer_string(messages), text)

    def _call(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> str:
        return self._text(messages, stop)

    def _chunks(self, messages: Messages, stop: list[str] | None) -> list[ChatGenerationChunk]:
        text = self._text(messages, stop)
        chunks = [ChatGenerationChunk(message=AIMessageChunk(content=t)) for t in tokenize(text)]
        if chunks:
            last = chunks[-1].message
            if isinstance(last, AIMessageChunk):
                last.usage_metadata = usage_metadata(self._usage(messages, text))
            chunks[-1].generation_info = {"finish_reason": "stop"}
        return chunks

    def _stream(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from paced(self._chunks(messages, stop), self.delay)

    async def _astream(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in apaced(self._chunks(messages, stop), self.delay):
            yield chunk
