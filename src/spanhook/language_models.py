"""The machinery LLMs and chat models share: one run (span) per prompt, streaming with
``on_llm_new_token`` before each chunk is yielded, retries reported through ``on_retry``,
token usage and GenAI attributes on the span, sync and async request methods."""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from opentelemetry.trace import SpanKind

from spanhook.flow import CLOCK, Call, Flow, arun_flow, in_worker, run_flow, to_async
from spanhook.model_streaming import (
    adrive_model,
    aopen_stream,
    astream_model,
    drive_model,
    open_stream,
    stream_model,
)
from spanhook.primitive import Primitive, PrimitiveOptions, arun_batch, run_batch, serialized_for
from spanhook.runtime.run import Run, RunKind
from spanhook.runtime.scope import Request
from spanhook.runtime.start import start_run
from spanhook.schema import LLMResult, RetryState
from spanhook.schema.genai import output_message, request_attributes, response_attributes
from spanhook.tracing import attributes as attr

if TYPE_CHECKING:
    from typing_extensions import Unpack

In = TypeVar("In")  # what one model call consumes: a prompt string or a message list
Chunk = TypeVar("Chunk")
Out = TypeVar("Out")


class ModelOptions(PrimitiveOptions, total=False):
    """Constructor options of every model: the primitive options, ``streaming`` (``invoke``
    streams and reports each chunk), ``max_retries`` and ``retry_delay`` (seconds)."""

    streaming: bool
    max_retries: int
    retry_delay: float


class BaseLanguageModel(Primitive, Generic[In, Chunk, Out]):
    """Shared base of :class:`spanhook.llms.LLM` and :class:`spanhook.chat_models.BaseChatModel`."""

    #: The model name on spans (``gen_ai.request.model``); defaults to the class name.
    model_name: str = ""
    #: ``gen_ai.provider.name``.
    provider: str = "spanhook"
    #: Remote model APIs are CLIENT spans; in-process models may say INTERNAL.
    span_kind: SpanKind = SpanKind.CLIENT
    _run_kind: RunKind = "llm"
    _operation: str = "text_completion"
    #: langchain-core's rule for who reports streamed tokens: an LLM's ``_stream`` reports
    #: its own through ``run_manager.on_llm_new_token``; a chat model's ``_stream`` is called
    #: without a run manager and the model's ``stream`` reports each chunk.
    _stream_reports_tokens: bool = False

    def __init__(
        self,
        *,
        streaming: bool = False,
        max_retries: int = 0,
        retry_delay: float = 0.0,
        **options: Unpack[PrimitiveOptions],
    ) -> None:
        self._init_primitive(**options)
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.streaming = streaming
        self.max_retries = max_retries
        self.retry_delay = retry_delay

    # -- what subclasses provide ----------------------------------------------------------
    def _prepare(self, input: Any) -> In:
        raise NotImplementedError

    def _generate_one(
        self, prepared: In, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> LLMResult:
        raise NotImplementedError

    async def _agenerate_one(
        self, prepared: In, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> LLMResult:
        return await in_worker(self._generate_one, prepared, stop, run, **kwargs)

    def _stream_one(
        self, prepared: In, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> Iterator[Chunk] | None:
        """Chunks of the answer, or ``None`` if the model cannot stream."""
        return None

    def _astream_one(
        self, prepared: In, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> AsyncIterator[Chunk] | None:
        sync = self._stream_one(prepared, stop, run, **kwargs)
        return None if sync is None else to_async(sync)

    def _chunk_text(self, chunk: Chunk) -> str:
        return str(getattr(chunk, "text", chunk))

    def _stream_item(self, chunk: Chunk) -> Any:
        """What ``stream()`` yields for a chunk: text for LLMs, a message chunk for chat models."""
        return chunk

    def _result_from_chunks(self, chunks: list[Chunk]) -> LLMResult:
        raise NotImplementedError

    def _output(self, result: LLMResult) -> Out:
        raise NotImplementedError

    def _content_messages(self, prepared: In) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.get_model_name()}

    def _span_attributes(self) -> dict[str, Any]:
        """Extra attributes for this model's spans (e.g. ``server.address``)."""
        return {}

    def _retryable(self, error: Exception) -> bool:
        """Whether a failed call is worth another attempt (within ``max_retries``)."""
        return True

    # -- helpers ---------------------------------------------------------------------------
    def get_model_name(self) -> str:
        return self.model_name or type(self).__name__

    def _llm_type(self) -> str:
        return type(self).__name__

    def _invocation_params(
        self, stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        params = {**self._identifying_params(), "_type": self._llm_type(), **kwargs}
        if stop is not None:
            params["stop"] = stop
        return attr.mask_secrets(params)  # type: ignore[no-any-return]

    def _start(
        self,
        prepared: In,
        request: Request | None,
        stop: list[str] | None,
        kwargs: Mapping[str, Any],
        batch_size: int = 1,
    ) -> Run:
        model = self.get_model_name()
        params = self._invocation_params(stop, kwargs)
        attributes = request_attributes(self._operation, self.provider, model, params)
        attributes.update(self._span_attributes())
        run = start_run(
            self._run_kind,
            self,
            request,
            name=self.get_name(),
            span_name=f"{self._operation} {model}",
            start_args=(serialized_for(self, kwargs=self._identifying_params()), [prepared]),
            start_kwargs={
                "invocation_params": params,
                "options": {"stop": stop},
                "name": request.run_name if request is not None else None,
                "batch_size": batch_size,
            },
            span_kind=self.span_kind,
            attributes=attributes,
        )
        run.error_kwargs = {**run.error_kwargs, "response": LLMResult(generations=[])}
        if run.capturing():
            run.record_content(
                attr.GEN_AI_INPUT_MESSAGES, attr.built_content(self._content_messages, prepared)
            )
        return run

    def _finish(self, run: Run, result: LLMResult, streamed: bool) -> None:
        run.set_attributes(response_attributes(result, self.get_model_name(), streamed))
        gens = result.generations[0] if result.generations else []
        if gens and run.capturing():
            run.record_content(
                attr.GEN_AI_OUTPUT_MESSAGES, attr.built_content(_output_messages, gens)
            )
        run.set_result(result)

    def _attempts(
        self, run: Run, prepared: In, stop: list[str] | None, kwargs: dict[str, Any]
    ) -> Flow[LLMResult]:
        """The retry loop, once for sync and async: attempt, report the retry, wait."""
        attempt = 1
        while True:
            try:
                result: LLMResult = yield Call(self, "_generate_one", prepared, stop, run, **kwargs)
                return result
            except Exception as e:
                if attempt > self.max_retries or not self._retryable(e):
                    raise
                state = RetryState(
                    attempt_number=attempt,
                    idle_for=0.0,
                    outcome_error=e,
                    next_sleep=self.retry_delay,
                )
            yield Call(run, "on_retry", state)
            if self.retry_delay:
                yield Call(CLOCK, "sleep", self.retry_delay)
            attempt += 1

    # -- one call ----------------------------------------------------------------------
    def _call_one(
        self,
        prepared: In,
        request: Request | None,
        stop: list[str] | None,
        kwargs: dict[str, Any],
        batch_size: int = 1,
    ) -> LLMResult:
        run = self._start(prepared, request, stop, kwargs, batch_size)
        if self.streaming:
            chunks = open_stream(self, prepared, stop, run, kwargs)
            if chunks is not None:
                for _ in drive_model(self, run, chunks, not self._stream_reports_tokens):
                    pass
                return run.result  # type: ignore[no-any-return]
        with run:
            result = run_flow(self._attempts(run, prepared, stop, kwargs))
            self._finish(run, result, streamed=False)
        return result

    async def _acall_one(
        self,
        prepared: In,
        request: Request | None,
        stop: list[str] | None,
        kwargs: dict[str, Any],
        batch_size: int = 1,
    ) -> LLMResult:
        run = self._start(prepared, request, stop, kwargs, batch_size)
        if self.streaming:
            chunks = aopen_stream(self, prepared, stop, run, kwargs)
            if chunks is not None:
                async for _ in adrive_model(self, run, chunks, not self._stream_reports_tokens):
                    pass
                return run.result  # type: ignore[no-any-return]
        async with run:
            result = await arun_flow(self._attempts(run, prepared, stop, kwargs))
            self._finish(run, result, streamed=False)
        return result

    # -- request methods -----------------------------------------------------------------
    def invoke(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stop: list[str] | None = None,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Out:
        request = self._request(config, callbacks, tags, metadata)
        return self._output(self._call_one(self._prepare(input), request, stop, kwargs))

    async def ainvoke(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stop: list[str] | None = None,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Out:
        request = self._request(config, callbacks, tags, metadata)
        return self._output(await self._acall_one(self._prepare(input), request, stop, kwargs))

    def _batch_sizes(self, n: int, limit: int | None) -> list[int]:
        """The ``batch_size`` each run of a batch reports: 1 for a chat model, whose batch is
        one call per input, as in langchain-core (an LLM overrides this)."""
        return [1] * n

    def _batch_work(
        self,
        inputs: Sequence[Any],
        config: Mapping[str, Any] | None,
        limit: int | None,
        request_args: tuple[Any, Any, Any],
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> list[tuple[In, Request, list[str] | None, dict[str, Any], int]]:
        prepared = [self._prepare(x) for x in inputs]
        requests = self._request(config, *request_args).per_input(len(prepared))
        sizes = self._batch_sizes(len(prepared), limit)
        return [
            (p, r, stop, dict(kwargs), n) for p, r, n in zip(prepared, requests, sizes, strict=True)
        ]

    def _batch_one(self, work: tuple[In, Request, list[str] | None, dict[str, Any], int]) -> Out:
        return self._output(self._call_one(*work))

    async def _abatch_one(
        self, work: tuple[In, Request, list[str] | None, dict[str, Any], int]
    ) -> Out:
        return self._output(await self._acall_one(*work))

    def batch(
        self,
        inputs: Sequence[Any],
        config: Mapping[str, Any] | None = None,
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        stop: list[str] | None = None,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Call the model on every input, in worker threads that carry the current run."""
        limit = self._max_concurrency(config, max_concurrency)
        work = self._batch_work(inputs, config, limit, (callbacks, tags, metadata), stop, kwargs)
        return run_batch(self._batch_one, work, limit, return_exceptions)

    async def abatch(
        self,
        inputs: Sequence[Any],
        config: Mapping[str, Any] | None = None,
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
        stop: list[str] | None = None,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        limit = self._max_concurrency(config, max_concurrency)
        work = self._batch_work(inputs, config, limit, (callbacks, tags, metadata), stop, kwargs)
        return await arun_batch(self._abatch_one, work, limit, return_exceptions)

    def stream(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stop: list[str] | None = None,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Generator[Any, None, None]:
        """Stream the answer chunk by chunk (a model that cannot stream yields it whole)."""
        return stream_model(self, input, config, (callbacks, tags, metadata), stop, kwargs)

    def astream(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stop: list[str] | None = None,
        callbacks: Sequence[Any] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[Any, None]:
        return astream_model(self, input, config, (callbacks, tags, metadata), stop, kwargs)

    def _whole_as_chunk(
        self, prepared: In, stop: list[str] | None, run: Run, kwargs: dict[str, Any]
    ) -> Iterator[Chunk]:
        raise NotImplementedError


def usage_metadata(usage: Mapping[str, int] | None) -> dict[str, int] | None:
    """langchain-core's ``usage_metadata`` shape of a ``token_usage`` dict."""
    if usage is None:
        return None
    return {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
    }


def _output_messages(generations: list[Any]) -> list[dict[str, Any]]:
    return [output_message(g) for g in generations]
