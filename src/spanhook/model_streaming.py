"""Streaming a model: ``stream`` / ``astream``, and ``invoke`` of a ``streaming=True`` model.

The model's chunks are driven inside its run (``runtime/streams.py``); who reports each
token follows langchain-core: an LLM's ``_stream`` reports its own through
``run_manager.on_llm_new_token``, a chat model's stream is reported here, chunk by chunk,
before the consumer gets it. A model that fails while opening its stream fails inside the
run; a model that cannot stream yields its whole answer as one reported chunk.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from spanhook.flow import failing, to_async
from spanhook.runtime.run import Run
from spanhook.runtime.streams import adrive, drive
from spanhook.schema import LLMResult

if TYPE_CHECKING:
    from spanhook.language_models import BaseLanguageModel

    Model = BaseLanguageModel[Any, Any, Any]


def open_stream(
    model: Model, prepared: Any, stop: list[str] | None, run: Run, kwargs: dict[str, Any]
) -> Iterator[Any] | None:
    """The model's chunks (``None`` if it cannot stream)."""
    try:
        return model._stream_one(prepared, stop, run, **kwargs)
    except Exception as e:
        return failing(e)


def aopen_stream(
    model: Model, prepared: Any, stop: list[str] | None, run: Run, kwargs: dict[str, Any]
) -> AsyncIterator[Any] | None:
    try:
        return model._astream_one(prepared, stop, run, **kwargs)
    except Exception as e:
        return to_async(failing(e))


def _hooks(
    model: Model, run: Run, report: bool, token: Callable[..., Any], count: Callable[[Any], Any]
) -> dict[str, Any]:
    """``drive`` / ``adrive``'s hooks: the result, the partial response of a failure, and
    before each yield ``on_llm_new_token`` (with ``report``) or ``count`` (the model's
    ``_stream`` reports its own tokens)."""

    def finish(collected: list[Any]) -> None:
        result = model._result_from_chunks(collected) if collected else LLMResult(generations=[])
        model._finish(run, result, streamed=True)

    def fail(collected: list[Any]) -> None:
        partial = model._result_from_chunks(collected) if collected else LLMResult(generations=[])
        run.error_kwargs = {**run.error_kwargs, "response": partial}

    return {
        "finish": finish,
        "on_chunk": (lambda c: token(model._chunk_text(c), chunk=c)) if report else count,
        "fail": fail,
    }


def _counter(model: Model, run: Run) -> Callable[[Any], None]:
    """For a model whose ``_stream`` reports its own tokens: count each chunk it did not
    report on the span (handlers get only what the model reported, as in langchain-core), so
    the chunk count and time to first chunk are right either way."""
    seen = 0

    def on_chunk(chunk: Any) -> None:
        nonlocal seen
        if (run.stream.count if run.stream is not None else 0) == seen:
            run.count_token(model._chunk_text(chunk))
        seen = run.stream.count if run.stream is not None else 0

    return on_chunk


def drive_model(
    model: Model, run: Run, chunks: Iterator[Any], report: bool
) -> Generator[Any, None, None]:
    hooks = _hooks(model, run, report, run.on_llm_new_token, _counter(model, run))
    return drive(run, chunks, **hooks)


def adrive_model(
    model: Model, run: Run, chunks: AsyncIterator[Any], report: bool
) -> AsyncGenerator[Any, None]:
    count = _counter(model, run)

    async def acount(chunk: Any) -> None:
        count(chunk)

    return adrive(run, chunks, **_hooks(model, run, report, run.aon_llm_new_token, acount))


def _open(
    model: Model,
    input: Any,
    config: Mapping[str, Any] | None,
    request: tuple[Any, Any, Any],
    stop: list[str] | None,
    kwargs: dict[str, Any],
) -> tuple[Any, Run]:
    prepared = model._prepare(input)
    return prepared, model._start(prepared, model._request(config, *request), stop, kwargs)


def stream_model(
    model: Model,
    input: Any,
    config: Mapping[str, Any] | None,
    request: tuple[Any, Any, Any],
    stop: list[str] | None,
    kwargs: dict[str, Any],
) -> Generator[Any, None, None]:
    prepared, run = _open(model, input, config, request, stop, kwargs)
    chunks = open_stream(model, prepared, stop, run, kwargs)
    report = chunks is None or not model._stream_reports_tokens
    if chunks is None:
        chunks = iter(model._whole_as_chunk(prepared, stop, run, kwargs))
    driven = drive_model(model, run, chunks, report)
    try:
        for chunk in driven:
            yield model._stream_item(chunk)
    finally:
        driven.close()  # closing this stream ends the run now, not at garbage collection


async def astream_model(
    model: Model,
    input: Any,
    config: Mapping[str, Any] | None,
    request: tuple[Any, Any, Any],
    stop: list[str] | None,
    kwargs: dict[str, Any],
) -> AsyncGenerator[Any, None]:
    prepared, run = _open(model, input, config, request, stop, kwargs)
    chunks = aopen_stream(model, prepared, stop, run, kwargs)
    report = chunks is None or not model._stream_reports_tokens
    if chunks is None:
        chunks = to_async(iter(model._whole_as_chunk(prepared, stop, run, kwargs)))
    driven = adrive_model(model, run, chunks, report)
    try:
        async for chunk in driven:
            yield model._stream_item(chunk)
    finally:
        await driven.aclose()
