"""``ChatOpenAI``: a chat model for OpenAI and any OpenAI-compatible server (vLLM,
llama.cpp, Ollama, LiteLLM, ...), over the official ``openai`` SDK
(``pip install 'spanhook[openai]'``).

Every call is a ``chat_model`` run: a CLIENT span named ``chat <model>`` carrying the GenAI
attributes (request and response model, response id, token usage, finish reasons,
``server.address`` / ``server.port``). Streaming asks the server for usage
(``stream_options.include_usage``), so token counts are there for streamed calls too, and
tool-call argument deltas reach ``on_llm_new_token`` in ``chunk.message.tool_call_chunks``.
The API key is never put on a span or handed to a handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from spanhook._openai import OpenAICompatible, OpenAIModelOptions, usage_dict, usage_metadata
from spanhook._openai_wire import to_openai_message, to_openai_tool
from spanhook.chat_models.base import BaseChatModel, Messages
from spanhook.primitive import AsyncRunManager, PrimitiveOptions, pick
from spanhook.runtime.run import Run
from spanhook.schema import (
    AIMessage,
    AIMessageChunk,
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    LLMResult,
)
from spanhook.schema.messages import tool_calls_from_chunks

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ChatOpenAI(OpenAICompatible, BaseChatModel):
    """A chat-completions model. ``api_key`` defaults to ``OPENAI_API_KEY`` and
    ``base_url`` to ``OPENAI_BASE_URL`` (else api.openai.com). ``max_retries`` retries
    connection errors, timeouts, rate limits and 5xx answers inside the same run, each
    reported through ``on_retry``. With ``suppress_provider_spans`` (the default), an
    instrumentation of the openai SDK that honours the suppression key makes no second LLM
    span for this model's calls. Each request carries the run's W3C ``traceparent``
    (``propagate_trace_context=False`` leaves it out)."""

    provider = "openai"
    span_kind = SpanKind.CLIENT

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        tools: Sequence[Any] | None = None,
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
        self.tools = [to_openai_tool(t) for t in tools] if tools else None

    def _llm_type(self) -> str:
        return "openai-chat"

    # -- requests -------------------------------------------------------------------------
    def _endpoint(self, client: Any) -> Any:
        return client.chat.completions

    def _body(
        self, messages: Messages, stop: list[str] | None, kwargs: Mapping[str, Any], stream: bool
    ) -> dict[str, Any]:
        body = self._request_body(stop, kwargs, stream)
        if body.get("tools"):
            body["tools"] = [to_openai_tool(t) for t in body["tools"]]
        elif self.tools:
            body["tools"] = self.tools
        body["messages"] = [to_openai_message(m) for m in messages]
        return body

    def _generate(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _chat_result(self._create(self._body(messages, stop, kwargs, False)))

    async def _agenerate(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: AsyncRunManager | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _chat_result(await self._acreate(self._body(messages, stop, kwargs, False)))

    def _stream(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._events(
            self._body(messages, stop, kwargs, True), _chunk
        )  # lazy: nothing runs before the first step

    async def _astream(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._aevents(self._body(messages, stop, kwargs, True), _chunk):
            yield chunk

    def _result_from_chunks(self, chunks: list[ChatGenerationChunk]) -> LLMResult:
        result = super()._result_from_chunks(chunks)
        meta = result.generations[0][0].message.response_metadata  # type: ignore[attr-defined]
        found = {key: meta[key] for key in ("model_name", "id") if meta.get(key)}
        result.llm_output = {**(result.llm_output or {}), **found}
        return result


def _chat_result(response: Any) -> ChatResult:
    usage = usage_dict(response.usage)
    gens = []
    for choice in response.choices:
        m = choice.message
        calls = tool_calls_from_chunks(
            [
                {"name": c.function.name, "args": c.function.arguments, "id": c.id}
                for c in m.tool_calls or []
            ]
        )
        msg = AIMessage(
            content=m.content or "",
            tool_calls=calls,
            usage_metadata=usage_metadata(usage),
            response_metadata={
                "model_name": response.model,
                "id": response.id,
                "finish_reason": choice.finish_reason,
                "system_fingerprint": getattr(response, "system_fingerprint", None),
            },
            id=response.id,
        )
        gens.append(
            ChatGeneration(message=msg, generation_info={"finish_reason": choice.finish_reason})
        )
    llm_output: dict[str, Any] = {"model_name": response.model, "id": response.id}
    if usage is not None:
        llm_output["token_usage"] = usage
    return ChatResult(generations=gens, llm_output=llm_output)


def _chunk(event: Any) -> ChatGenerationChunk | None:
    """A stream event as a chunk (``None`` for an event that carries nothing)."""
    usage = usage_metadata(usage_dict(getattr(event, "usage", None)))
    meta = {"model_name": event.model, "id": event.id}
    if not event.choices:
        if usage is None:
            return None
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="", usage_metadata=usage, response_metadata=meta, id=event.id
            )
        )
    choice = event.choices[0]
    delta = choice.delta
    tool_chunks = [
        {
            "name": c.function.name if c.function else None,
            "args": c.function.arguments if c.function else None,
            "id": c.id,
            "index": c.index,
            "type": "tool_call_chunk",
        }
        for c in delta.tool_calls or []
    ]
    info = {"finish_reason": choice.finish_reason} if choice.finish_reason else None
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content=delta.content or "",
            tool_call_chunks=tool_chunks,
            usage_metadata=usage,
            response_metadata=meta,
            id=event.id,
        ),
        generation_info=info,
    )
