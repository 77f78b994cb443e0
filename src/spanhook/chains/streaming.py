"""Streaming a chain: ``Chain.stream`` / ``Chain.astream``.

Everything runs on the first step, inside the generator (as for any generator): the request
is parsed, the run started and, for a chain that streams (``_stream_call`` /
``_astream_call``), driven chunk by chunk; any other chain yields its outputs dict once. A
request missing input keys runs the plain body, which ends the run with the error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from spanhook.runtime.run import Run
from spanhook.runtime.streams import aclose_inner, drive
from spanhook.tracing import attributes as attr

if TYPE_CHECKING:
    from spanhook.chains.base import Chain


def _open(
    chain: Chain, input: Any, config: Mapping[str, Any] | None, request: Mapping[str, Any]
) -> tuple[dict[str, Any], Run, bool]:
    prepared = chain.prep_inputs(input)
    run = chain._start(prepared, chain._request(config, **request))
    return prepared, run, all(k in prepared for k in chain.input_keys)


def _finisher(chain: Chain, run: Run) -> Callable[[list[Any]], None]:
    def finish(collected: list[Any]) -> None:
        chain._done(run, chain._stream_outputs(collected))

    return finish


def stream_chain(
    chain: Chain, input: Any, config: Mapping[str, Any] | None, request: Mapping[str, Any]
) -> Iterator[Any]:
    prepared, run, valid = _open(chain, input, config, request)
    chunks = chain._stream_call(prepared, run) if valid else None
    if chunks is None:
        with run:
            outputs = chain._done(run, chain._invoke_call(prepared, run))
        yield outputs
        return
    driven = drive(run, chunks, _finisher(chain, run))
    try:
        yield from driven
    finally:
        driven.close()  # closing this stream ends the run now, not at garbage collection


async def astream_chain(
    chain: Chain, input: Any, config: Mapping[str, Any] | None, request: Mapping[str, Any]
) -> AsyncIterator[Any]:
    prepared, run, valid = _open(chain, input, config, request)
    chunks = chain._astream_call(prepared, run) if valid else None
    if chunks is None:
        async with run:
            outputs = chain._done(run, await chain._ainvoke_call(prepared, run))
        yield outputs
        return
    # Driven here, not through streams.adrive: a second async generator layer would be
    # finalized on its own (in another task) when the loop shuts down an abandoned stream.
    # The steps are adrive's; the inner stream is closed by the same function (aclose_inner).
    collected: list[Any] = []
    await run.aopen()
    try:
        while True:
            token = run.attach()
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            finally:
                run.detach(token)
            collected.append(chunk)
            yield chunk
    except GeneratorExit:
        try:  # the run ends even if closing the inner stream is cancelled
            await aclose_inner(run, chunks)
        finally:
            run.set_attributes({attr.STREAM_CLOSED_EARLY: True})
            run.set_result(chain._stream_outputs(collected))
            await run.aclose_ok()
        raise
    except BaseException as e:
        try:  # close the inner stream first: nested runs end before this one
            await aclose_inner(run, chunks)
        finally:
            await run.aclose_error(e)
        raise
    _finisher(chain, run)(collected)
    await run.aclose_ok()
