"""``FakeListLLM``: answers with the given responses in turn (for tests and examples)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from spanhook.language_models import ModelOptions
from spanhook.llms.base import LLM, reporting
from spanhook.primitive import AsyncRunManager
from spanhook.runtime.run import Run
from spanhook.schema import GenerationChunk

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ResponseCycle:
    """The given responses in turn, starting over at the end (thread-safe)."""

    def __init__(self, responses: Sequence[str], owner: str) -> None:
        if (
            isinstance(responses, str)
            or not responses
            or not all(isinstance(r, str) for r in responses)
        ):
            raise ValueError(f"{owner} needs a non-empty list of response strings")
        self.responses = list(responses)
        self.i = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            response = self.responses[self.i]
            self.i = (self.i + 1) % len(self.responses)
        return response


class FakeListLLM(LLM):
    """Returns ``responses[0]``, then ``responses[1]``, ... and starts over at the end.

    ``sleep`` (seconds) delays every call, to make concurrency visible in tests. ``stream``
    yields the response character by character.
    """

    model_name = "fake-list"
    span_kind = SpanKind.INTERNAL

    def __init__(
        self,
        responses: Sequence[str],
        *,
        sleep: float = 0.0,
        **options: Unpack[ModelOptions],
    ) -> None:
        super().__init__(**options)
        self._cycle = ResponseCycle(responses, "FakeListLLM")
        self.responses = self._cycle.responses
        self.sleep = sleep

    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "responses": self.responses}

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> str:
        if self.sleep:
            time.sleep(self.sleep)
        return self._cycle.next()

    async def _acall(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncRunManager | None = None,
        **kwargs: Any,
    ) -> str:
        if self.sleep:
            await asyncio.sleep(self.sleep)
        return self._cycle.next()

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        text = self._call(prompt, stop)
        yield from reporting((GenerationChunk(text=ch) for ch in text), run_manager)

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncRunManager | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        text = await self._acall(prompt, stop)
        for ch in text:
            chunk = GenerationChunk(text=ch)
            if run_manager is not None:
                await run_manager.on_llm_new_token(ch, chunk=chunk)
            yield chunk
