"""``LLM``: the base for text-completion models. Implement ``_call`` (and optionally
``_stream``); every call is a run with its own span."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from functools import reduce
from typing import Any

from spanhook.flow import in_worker
from spanhook.language_models import BaseLanguageModel
from spanhook.primitive import AsyncRunManager, call_hook, hook_result
from spanhook.prompts.base import PromptValue
from spanhook.runtime.run import Run
from spanhook.runtime.scope import Request
from spanhook.schema import Generation, GenerationChunk, LLMResult
from spanhook.schema.genai import text_message


class LLM(BaseLanguageModel[str, GenerationChunk, str]):
    """A text-completion model: ``prompt -> text``.

    Subclasses implement ``_call(self, prompt, stop=None, run_manager=None, **kwargs)`` and,
    to stream, ``_stream(...)`` yielding ``GenerationChunk`` objects, each reported through
    ``run_manager.on_llm_new_token(chunk.text, chunk=chunk)`` before it is yielded
    (langchain-core's contract; :func:`reporting` does both). ``_acall`` /
    ``_astream`` may be overridden for native async (the defaults run the sync versions in a
    worker thread, carrying the current run).
    """

    _run_kind = "llm"
    _operation = "text_completion"
    _stream_reports_tokens = True

    # -- to implement -----------------------------------------------------------------
    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> str:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _call(prompt, stop=None, run_manager=None)"
        )

    async def _acall(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncRunManager | None = None,
        **kwargs: Any,
    ) -> str:
        run = run_manager.get_sync() if run_manager is not None else None
        return await in_worker(self._invoke_call, prompt, stop, run, kwargs)

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        raise NotImplementedError

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncRunManager | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _usage(self, prompt: str, text: str) -> dict[str, int] | None:
        """Token usage of one call (``prompt_tokens``, ``completion_tokens``), if known."""
        return None

    # -- plumbing ---------------------------------------------------------------------
    def _invoke_call(
        self, prompt: str, stop: list[str] | None, run: Run | None, kwargs: dict[str, Any]
    ) -> str:
        return call_hook(self._call, run, prompt, stop=stop, **kwargs)

    def _prepare(self, input: Any) -> str:
        if isinstance(input, str):
            return input
        if isinstance(input, PromptValue):
            return input.to_string()
        raise TypeError(
            f"{type(self).__name__} takes a prompt string or PromptValue, got {type(input).__name__}"
        )

    def _content_messages(self, prepared: str) -> list[dict[str, Any]]:
        return [text_message("user", prepared)]

    def _result(self, prompt: str, text: str) -> LLMResult:
        usage = self._usage(prompt, text)
        if usage:
            total = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
            usage = {**usage, "total_tokens": total}
        return self._llm_result(text, None, usage or None)

    def _llm_result(
        self, text: str, info: dict[str, Any] | None, usage: dict[str, Any] | None
    ) -> LLMResult:
        """One generation of ``text`` (``finish_reason`` "stop" unless ``info`` says more),
        with ``token_usage`` in ``llm_output`` when ``usage`` is given."""
        out: dict[str, Any] = {"model_name": self.get_model_name()}
        if usage is not None:
            out["token_usage"] = usage
        gen = Generation(text=text, generation_info=info or {"finish_reason": "stop"})
        return LLMResult(generations=[[gen]], llm_output=out)

    def _generate_one(
        self, prepared: str, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> LLMResult:
        text = self._invoke_call(prepared, stop, run, kwargs)
        return self._result(prepared, hook_result(self, text, str, "a str", "_call"))

    async def _agenerate_one(
        self, prepared: str, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> LLMResult:
        text = await call_hook(self._acall, AsyncRunManager(run), prepared, stop=stop, **kwargs)
        return self._result(prepared, hook_result(self, text, str, "a str", "_acall", "_call"))

    def _implements(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(LLM, name)

    def _stream_one(
        self, prepared: str, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> Iterator[GenerationChunk] | None:
        if not self._implements("_stream"):
            return None
        return call_hook(self._stream, run, prepared, stop=stop, **kwargs)

    def _astream_one(
        self, prepared: str, stop: list[str] | None, run: Run, **kwargs: Any
    ) -> AsyncIterator[GenerationChunk] | None:
        if self._implements("_astream"):
            return call_hook(self._astream, AsyncRunManager(run), prepared, stop=stop, **kwargs)
        return super()._astream_one(prepared, stop, run, **kwargs)

    def _whole_as_chunk(
        self, prepared: str, stop: list[str] | None, run: Run, kwargs: dict[str, Any]
    ) -> Iterator[GenerationChunk]:
        result = self._generate_one(prepared, stop, run, **kwargs)
        gen = result.generations[0][0]
        yield GenerationChunk(text=gen.text, generation_info=gen.generation_info)

    def _result_from_chunks(self, chunks: list[GenerationChunk]) -> LLMResult:
        total = reduce(operator.add, chunks)
        info = total.generation_info or {}
        usage = info.get("token_usage")
        return self._llm_result(total.text, info, usage if isinstance(usage, dict) else None)

    def _batch_sizes(self, n: int, limit: int | None) -> list[int]:
        """An LLM's batch is a ``generate()`` over its prompts (in groups of
        ``max_concurrency``): each run reports the size of its group, as in langchain-core."""
        if not limit:
            return [n] * n
        return [min(limit, n - i // limit * limit) for i in range(n)]

    def _output(self, result: LLMResult) -> str:
        return result.generations[0][0].text

    def _chunk_text(self, chunk: GenerationChunk) -> str:
        return chunk.text

    def _stream_item(self, chunk: GenerationChunk) -> str:
        return chunk.text

    # -- LangChain-style extra request methods ------------------------------------------
    def __call__(
        self,
        prompt: str,
        stop: list[str] | None = None,
        callbacks: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> str:
        if not isinstance(prompt, str):
            raise TypeError(
                f"{type(self).__name__}() takes a prompt string, got {type(prompt).__name__}"
            )
        return self.invoke(prompt, stop=stop, callbacks=callbacks, **kwargs)

    def predict(self, text: str, **kwargs: Any) -> str:
        return self.invoke(text, **kwargs)

    async def apredict(self, text: str, **kwargs: Any) -> str:
        return await self.ainvoke(text, **kwargs)

    def _generate_work(
        self, prompts: Sequence[str], method: str, request: Request
    ) -> tuple[list[str], Request, int]:
        if isinstance(prompts, str):
            raise TypeError(
                f"{method}() takes a list of prompts, got a single string; use {method[:-8]}invoke()"
            )
        return [self._prepare(p) for p in prompts], request, len(prompts)

    def generate(
        self,
        prompts: Sequence[str],
        stop: list[str] | None = None,
        callbacks: Sequence[Any] | None = None,
        *,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        """One run per prompt (as langchain-core calls ``on_llm_start`` once per prompt)."""
        request = self._request(None, callbacks, tags, metadata, run_name=run_name)
        todo, request, n = self._generate_work(prompts, "generate", request)
        return _merge([self._call_one(p, request, stop, dict(kwargs), n) for p in todo])

    async def agenerate(
        self,
        prompts: Sequence[str],
        stop: list[str] | None = None,
        callbacks: Sequence[Any] | None = None,
        *,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        request = self._request(None, callbacks, tags, metadata, run_name=run_name)
        todo, request, n = self._generate_work(prompts, "agenerate", request)
        calls = (self._acall_one(p, request, stop, dict(kwargs), n) for p in todo)
        return _merge(list(await asyncio.gather(*calls)))


def reporting(
    chunks: Iterable[GenerationChunk], run_manager: Run | None
) -> Iterator[GenerationChunk]:
    """Yield ``chunks``, each reported through ``run_manager`` first (an LLM's ``_stream``)."""
    for chunk in chunks:
        if run_manager is not None:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk


async def areporting(
    chunks: AsyncIterator[GenerationChunk], run_manager: AsyncRunManager | Run | None
) -> AsyncIterator[GenerationChunk]:
    """The async twin of :func:`reporting` (``_astream``); ``chunks`` is closed with it."""
    try:
        async for chunk in chunks:
            if isinstance(run_manager, AsyncRunManager):
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            elif run_manager is not None:
                await run_manager.aon_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _merge(results: list[LLMResult]) -> LLMResult:
    usage: dict[str, int] = {}
    for r in results:
        for k, v in ((r.llm_output or {}).get("token_usage") or {}).items():
            usage[k] = usage.get(k, 0) + int(v)
    out: dict[str, Any] = dict(results[0].llm_output or {}) if results else {}
    if usage:
        out["token_usage"] = usage
    return LLMResult(
        generations=[g for r in results for g in r.generations], llm_output=out or None
    )
