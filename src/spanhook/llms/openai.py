"""``OpenAI``: a text-completion model for OpenAI's (legacy) completions endpoint and the
OpenAI-compatible servers that serve ``/v1/completions`` (vLLM, llama.cpp, ...), over the
official ``openai`` SDK (``pip install 'spanhook[openai]'``). The drop-in for the seed's
``OpenAI()``; see :class:`spanhook.chat_models.ChatOpenAI` for chat models."""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Iterator, Mapping
from functools import reduce
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from spanhook._openai import OpenAICompatible, OpenAIModelOptions, usage_dict
from spanhook.llms.base import LLM, areporting, reporting
from spanhook.primitive import AsyncRunManager, PrimitiveOptions, pick
from spanhook.runtime.run import Run
from spanhook.schema import Generation, GenerationChunk, LLMResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Keys of a stream chunk's ``generation_info`` that belong in ``llm_output`` instead.
_RESPONSE_KEYS = ("token_usage", "model_name", "id")


class OpenAI(OpenAICompatible, LLM):
    """A completions model. ``api_key`` defaults to ``OPENAI_API_KEY`` and ``base_url`` to
    ``OPENAI_BASE_URL`` (else api.openai.com); retries and ``suppress_provider_spans`` as in
    ``ChatOpenAI``."""

    provider = "openai"
    span_kind = SpanKind.CLIENT

    def __init__(
        self,
        model: str = "gpt-3.5-turbo-instruct",
        *,
        max_retries: int = 2,
        retry_delay: float = 0.5,
        **options: Unpack[OpenAIModelOptions],
    ) -> None:
        super().__init__(
            streaming=options.get("streaming", False),
            max_retries=max_retries,
            retry_delay=retry_delay,
            **pick(options, PrimitiveOptions),
        )
        self._setup_openai(model, options)

    def _llm_type(self) -> str:
        return "openai"

    def _endpoint(self, client: Any) -> Any:
        return client.completions

    def _body(
        self, prompt: str, stop: list[str] | None, kwargs: Mapping[str, Any], stream: bool
    ) -> dict[str, Any]:
        body = self._request_body(stop, kwargs, stream)
        body["prompt"] = prompt
        return body

    def _generate_one(
        self, prepared: str, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> LLMResult:
        return _completion_result(self._create(self._body(prepared, stop, kwargs, False)))

    async def _agenerate_one(
        self, prepared: str, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> LLMResult:
        return _completion_result(await self._acreate(self._body(prepared, stop, kwargs, False)))

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        # lazy: nothing runs before the first step
        yield from reporting(
            self._events(self._body(prompt, stop, kwargs, True), _chunk), run_manager
        )

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncRunManager | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        chunks = self._aevents(self._body(prompt, stop, kwargs, True), _chunk)
        async for chunk in areporting(chunks, run_manager):
            yield chunk

    def _result_from_chunks(self, chunks: list[GenerationChunk]) -> LLMResult:
        total = reduce(operator.add, chunks)
        info = dict(total.generation_info or {})
        response = {key: info.pop(key) for key in _RESPONSE_KEYS if key in info}
        gen = Generation(text=total.text, generation_info=info or {"finish_reason": "stop"})
        return LLMResult(
            generations=[[gen]], llm_output={"model_name": self.model_name, **response}
        )


def _completion_result(response: Any) -> LLMResult:
    gens = [
        Generation(text=c.text or "", generation_info={"finish_reason": c.finish_reason})
        for c in response.choices
    ]
    out: dict[str, Any] = {"model_name": response.model, "id": response.id}
    usage = usage_dict(response.usage)
    if usage is not None:
        out["token_usage"] = usage
    return LLMResult(generations=[gens], llm_output=out)


def _chunk(event: Any) -> GenerationChunk | None:
    info: dict[str, Any] = {"model_name": event.model, "id": event.id}
    usage = usage_dict(getattr(event, "usage", None))
    if usage is not None:
        info["token_usage"] = usage
    if not event.choices:
        return GenerationChunk(text="", generation_info=info) if usage is not None else None
    choice = event.choices[0]
    if choice.finish_reason:
        info["finish_reason"] = choice.finish_reason
    return GenerationChunk(text=choice.text or "", generation_info=info)
