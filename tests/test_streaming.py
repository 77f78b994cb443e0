"""Streaming on LLMs, chat models and chains, with real generators and asyncio tasks.

- ``on_llm_new_token`` (``token`` and ``chunk``) reaches every handler in scope before the
  consumer receives that chunk;
- the span records time to first chunk, the chunk count and token usage; per-token span
  events only when enabled, a single first-token event otherwise;
- a stream closed early (break, ``close()``, ``aclose()``) ends its span, calls ``on_llm_end``
  once with the partial text and marks the span; a stream failing mid-way ends the span with
  ERROR and calls ``on_llm_error`` once with the partial generation;
- the consumer's loop body never runs inside the model's context.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import spanhook
from helpers import Recorder
from spanhook.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.chains import Chain, LLMChain
from spanhook.chat_models import OfflineChatModel
from spanhook.llms import LLM, FakeListLLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.schema import ChatGenerationChunk, GenerationChunk, LLMResult
from spanhook.tracing import attributes as attr

PROMPT = "tell me about streaming tokens over websockets"
OFFLINE_ANSWER = f"You said: {PROMPT}"
CHAT_ANSWER = f"You said: Human: {PROMPT}"  # the chat model reads the rendered messages


class TokenLog(BaseCallbackHandler):
    """Appends ``(label, token)`` to a shared log on every token; keeps the chunks."""

    def __init__(self, label: str, log: list[tuple[str, str]]) -> None:
        self.label = label
        self.log = log
        self.chunks: list[Any] = []
        self.lock = threading.Lock()

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        with self.lock:
            self.log.append((self.label, token))
            self.chunks.append(chunk)


class AsyncTokenLog(AsyncCallbackHandler):
    def __init__(self, label: str, log: list[tuple[str, str]]) -> None:
        self.label = label
        self.log = log
        self.chunks: list[Any] = []

    async def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        await asyncio.sleep(0.001)  # a real suspension: the consumer must still wait for it
        self.log.append((self.label, token))
        self.chunks.append(chunk)


def _text(chunk: Any) -> str:
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, ChatGenerationChunk):
        return str(chunk.message.content)
    if hasattr(chunk, "content"):  # a chat model's stream yields message chunks
        return str(chunk.content)
    return str(chunk.text)


# Each target: (build(ctor_handler) -> object to stream, input, expected chunk texts or None)
def _offline(ctor: Any) -> Any:
    return OfflineLLM(callbacks=[ctor])


def _chat(ctor: Any) -> Any:
    return OfflineChatModel(callbacks=[ctor])


def _fake(ctor: Any) -> Any:
    return FakeListLLM(["stream me"], callbacks=[ctor])


def _chain(ctor: Any) -> Any:
    return LLMChain(llm=OfflineLLM(callbacks=[ctor]), prompt=PromptTemplate.from_template("{q}"))


TARGETS: dict[str, tuple[Callable[[Any], Any], Any, str]] = {
    "OfflineLLM": (_offline, PROMPT, OFFLINE_ANSWER),
    "OfflineChatModel": (_chat, PROMPT, CHAT_ANSWER),
    "FakeListLLM": (_fake, PROMPT, "stream me"),
    "LLMChain": (_chain, {"q": PROMPT}, OFFLINE_ANSWER),
}


def _consume_sync(
    obj: Any, inp: Any, callbacks: list[Any], log: list[tuple[str, str]]
) -> list[Any]:
    got = []
    for chunk in obj.stream(inp, callbacks=callbacks):
        log.append(("consumer", _text(chunk)))
        got.append(chunk)
    return got


def _consume_async(
    obj: Any, inp: Any, callbacks: list[Any], log: list[tuple[str, str]]
) -> list[Any]:
    async def main() -> list[Any]:
        got = []
        async for chunk in obj.astream(inp, callbacks=callbacks):
            log.append(("consumer", _text(chunk)))
            got.append(chunk)
        return got

    return asyncio.run(main())


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("handler_kind", ["sync", "async"])
def test_token_reaches_every_handler_in_scope_before_the_consumer(
    target: str, mode: str, handler_kind: str, memory_exporter: InMemorySpanExporter
) -> None:
    build, inp, answer = TARGETS[target]
    log: list[tuple[str, str]] = []
    cls: Any = TokenLog if handler_kind == "sync" else AsyncTokenLog
    request, ctor = cls("request", log), cls("ctor", log)
    obj = build(ctor)
    consume = _consume_sync if mode == "stream" else _consume_async
    got = consume(obj, inp, [request], log)

    texts = [_text(c) for c in got]
    assert "".join(texts) == answer
    assert len(texts) > 1, "the answer must come in several chunks"
    # for every chunk: the request handler, then the constructor handler, then the consumer
    assert log == [(who, t) for t in texts for who in ("request", "ctor", "consumer")]
    # the chunk kwarg is the model's chunk object (for a chain, the model chunk it yields text of)
    for h in (request, ctor):
        assert [_text(c) for c in h.chunks] == texts
        kind = ChatGenerationChunk if target == "OfflineChatModel" else GenerationChunk
        assert all(isinstance(c, kind) for c in h.chunks)
        if target == "OfflineChatModel":  # the consumer gets the very message chunk
            assert all(a.message is b for a, b in zip(h.chunks, got, strict=True))


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_stream_span_has_ttfc_chunk_count_and_usage(
    target: str, mode: str, memory_exporter: InMemorySpanExporter
) -> None:
    build, inp, answer = TARGETS[target]
    rec = Recorder()
    obj = build(rec)
    consume = _consume_sync if mode == "stream" else _consume_async
    got = consume(obj, inp, [], [])
    spans = memory_exporter.get_finished_spans()
    model_span = next(
        s for s in spans if s.attributes["spanhook.run.kind"] in ("llm", "chat_model")
    )  # type: ignore[index]
    a = model_span.attributes or {}
    n_tokens = len(rec.of("on_llm_new_token"))
    assert a[attr.STREAM_CHUNKS] == n_tokens == len(got)
    ttfc = a[attr.GEN_AI_RESPONSE_TTFC]
    assert isinstance(ttfc, float)
    assert 0.0 <= ttfc <= (model_span.end_time - model_span.start_time) / 1e9  # type: ignore[operator]
    assert a[attr.GEN_AI_REQUEST_STREAM] is True
    if target == "FakeListLLM":
        assert attr.GEN_AI_USAGE_OUTPUT_TOKENS not in a  # this fake reports no usage
    else:
        assert a[attr.GEN_AI_USAGE_OUTPUT_TOKENS] == len(answer.split())
        prompt_words = len(PROMPT.split()) + (1 if target == "OfflineChatModel" else 0)
        assert a[attr.GEN_AI_USAGE_INPUT_TOKENS] == prompt_words
        usage = rec.of("on_llm_end")[0].args[0].llm_output["token_usage"]
        assert usage["completion_tokens"] == len(answer.split())
    names = [e.name for e in model_span.events]
    assert names == ["spanhook.first_token"], "no per-token events unless enabled"


def _token_events(span: ReadableSpan) -> list[Any]:
    return [e for e in span.events if e.name == "spanhook.token"]


@pytest.mark.parametrize("how", ["env", "configure"])
@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_per_token_span_events_only_when_enabled(
    how: str, mode: str, memory_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    consume = _consume_sync if mode == "stream" else _consume_async
    got = consume(OfflineLLM(), PROMPT, [], [])
    (off,) = memory_exporter.get_finished_spans()
    assert _token_events(off) == []
    assert [e.name for e in off.events] == ["spanhook.first_token"]
    memory_exporter.clear()

    if how == "env":
        monkeypatch.setenv("SPANHOOK_TOKEN_EVENTS", "true")
        from spanhook.tracing.settings import set_settings

        set_settings(None)  # read the environment again
    else:
        spanhook.configure(exporters="none", token_events=True)
    consume(OfflineLLM(), PROMPT, [], [])
    (on,) = memory_exporter.get_finished_spans()
    events = _token_events(on)
    assert [e.attributes["spanhook.token.index"] for e in events] == list(range(len(got)))  # type: ignore[index]
    # content is not captured by default: the token text stays out of the span
    assert all("spanhook.token.text" not in (e.attributes or {}) for e in events)
    assert [e.name for e in on.events].count("spanhook.first_token") == 1


def test_token_events_carry_text_only_with_content_capture(
    memory_exporter: InMemorySpanExporter,
) -> None:
    spanhook.configure(exporters="none", token_events=True, capture_content=True)
    got = list(OfflineLLM().stream(PROMPT))
    (span,) = memory_exporter.get_finished_spans()
    assert [e.attributes["spanhook.token.text"] for e in _token_events(span)] == got  # type: ignore[index]


# -- closed early -----------------------------------------------------------------------


def _close_sync_break(obj: Any, inp: Any, cbs: list[Any], n: int) -> list[Any]:
    got = []
    for chunk in obj.stream(inp, callbacks=cbs):
        got.append(chunk)
        if len(got) == n:
            break
    return got


def _close_sync_close(obj: Any, inp: Any, cbs: list[Any], n: int) -> list[Any]:
    it = obj.stream(inp, callbacks=cbs)
    got = [next(it) for _ in range(n)]
    holder = [it]  # still referenced: only close() ends it
    holder[0].close()
    return got


def _close_async_aclose(obj: Any, inp: Any, cbs: list[Any], n: int) -> list[Any]:
    async def main() -> list[Any]:
        agen = obj.astream(inp, callbacks=cbs)
        got = [await agen.__anext__() for _ in range(n)]
        await agen.aclose()
        return got

    return asyncio.run(main())


def _close_async_break(obj: Any, inp: Any, cbs: list[Any], n: int) -> list[Any]:
    """``break`` out of ``async for``: asyncio's async-generator finalizer closes the stream
    once the generator is unreferenced (a task of its own); the runs end then, in order."""

    async def main() -> list[Any]:
        got = []
        async for chunk in obj.astream(inp, callbacks=cbs):
            got.append(chunk)
            if len(got) == n:
                break
        gc.collect()
        await asyncio.sleep(0)  # the finalizer hook schedules the closing task
        me = asyncio.current_task()
        for _ in range(500):  # until the finalizer task is done (bounded)
            if not [t for t in asyncio.all_tasks() if t is not me]:
                break
            await asyncio.sleep(0.002)
        return got

    return asyncio.run(main())


CLOSERS = {
    "break": _close_sync_break,
    "close": _close_sync_close,
    "aclose": _close_async_aclose,
    "async-break": _close_async_break,
}


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("how", list(CLOSERS))
def test_stream_closed_early_ends_span_and_calls_llm_end_once(
    target: str, how: str, memory_exporter: InMemorySpanExporter
) -> None:
    build, inp, answer = TARGETS[target]
    rec = Recorder()
    obj = build(Recorder("ctor"))
    got = CLOSERS[how](obj, inp, [rec], 2)
    partial = "".join(_text(c) for c in got)
    assert len(partial) < len(answer)

    ends = rec.of("on_llm_end")
    assert len(ends) == 1
    assert rec.of("on_llm_error") == []
    result = ends[0].args[0]
    assert isinstance(result, LLMResult)
    assert result.generations[0][0].text == partial
    assert len(rec.of("on_llm_new_token")) == 2

    spans = memory_exporter.get_finished_spans()
    assert len(spans) == (2 if target == "LLMChain" else 1)
    for s in spans:
        assert s.end_time is not None
        assert s.status.status_code is StatusCode.UNSET
        assert (s.attributes or {})[attr.STREAM_CLOSED_EARLY] is True
    if target == "LLMChain":
        chain_span = next(s for s in spans if s.name == "LLMChain")
        model_span = next(s for s in spans if s is not chain_span)
        assert model_span.end_time <= chain_span.end_time  # type: ignore[operator]
        assert rec.names()[-2:] == ["on_llm_end", "on_chain_end"]
        assert rec.of("on_chain_end")[0].args[0] == {"text": partial}
        assert rec.of("on_chain_error") == []
    assert spanhook.current_run() is None


# -- failing mid-way ---------------------------------------------------------------------


def _chain_around(llm: Any) -> LLMChain:
    return LLMChain(llm=llm, prompt=PromptTemplate.from_template("{q}"))


@pytest.mark.parametrize("via_chain", [False, True], ids=["llm", "chain"])
@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_stream_failing_midway_ends_span_with_error_and_partial_response(
    via_chain: bool, mode: str, memory_exporter: InMemorySpanExporter
) -> None:
    llm = OfflineLLM(fail_after=3)
    obj: Any = _chain_around(llm) if via_chain else llm
    inp: Any = {"q": PROMPT} if via_chain else PROMPT
    rec = Recorder()
    got: list[Any] = []

    if mode == "stream":
        with pytest.raises(RuntimeError, match="failed after 3 tokens"):
            for chunk in obj.stream(inp, callbacks=[rec]):
                got.append(chunk)
    else:

        async def main() -> None:
            async for chunk in obj.astream(inp, callbacks=[rec]):
                got.append(chunk)

        with pytest.raises(RuntimeError, match="failed after 3 tokens"):
            asyncio.run(main())

    assert len(got) == 3
    partial = "".join(_text(c) for c in got)
    errors = rec.of("on_llm_error")
    assert len(errors) == 1
    assert rec.of("on_llm_end") == []
    assert isinstance(errors[0].args[0], RuntimeError)
    response = errors[0].kwargs["response"]
    assert isinstance(response, LLMResult)
    assert response.generations[0][0].text == partial == OFFLINE_ANSWER[: len(partial)]
    assert len(rec.of("on_llm_new_token")) == 3

    spans = {s.name: s for s in memory_exporter.get_finished_spans()}
    model_span = spans["text_completion spanhook-offline-1"]
    assert model_span.status.status_code is StatusCode.ERROR
    assert [e.name for e in model_span.events].count("exception") == 1
    assert (model_span.attributes or {})[attr.STREAM_CHUNKS] == 3
    if via_chain:
        assert len(rec.of("on_chain_error")) == 1
        assert rec.of("on_chain_end") == []
        assert spans["LLMChain"].status.status_code is StatusCode.ERROR
        assert rec.names()[-2:] == ["on_llm_error", "on_chain_error"]
    assert spanhook.current_run() is None


# -- no context leak to the consumer ---------------------------------------------------------


class Spy(LLM):
    """Streams three chunks, noting which span and run are current while it computes each,
    and reports each through ``run_manager`` (an LLM's ``_stream`` reports its tokens)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside: list[tuple[Any, Any]] = []

    def _call(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> str:
        return "a b c"

    def _note(self) -> None:
        run = spanhook.current_run()
        self.inside.append((trace.get_current_span(), run.run_id if run else None))

    def _stream(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[GenerationChunk]:
        for t in ("a", " b", " c"):
            self._note()
            run_manager.on_llm_new_token(t, chunk=GenerationChunk(text=t))
            yield GenerationChunk(text=t)

    async def _astream(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[GenerationChunk]:
        for t in ("a", " b", " c"):
            await asyncio.sleep(0)
            self._note()
            await run_manager.on_llm_new_token(t, chunk=GenerationChunk(text=t))
            yield GenerationChunk(text=t)


class RunInToken(BaseCallbackHandler):
    """A run_inline-style handler reading the context when it gets a token."""

    run_inline = True

    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any]] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        run = spanhook.current_run()
        self.seen.append((run.run_id if run else None, kwargs["run_id"]))


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("via_chain", [False, True], ids=["llm", "chain"])
def test_no_context_leaks_to_the_consumer_while_iterating(
    mode: str, via_chain: bool, memory_exporter: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("app")
    spy = Spy()
    obj: Any = _chain_around(spy) if via_chain else spy
    inp: Any = {"q": "x"} if via_chain else "x"
    token_handler = RunInToken()
    in_body: list[tuple[Any, Any]] = []

    def body() -> None:
        in_body.append((trace.get_current_span(), spanhook.current_run()))

    if mode == "stream":
        with tracer.start_as_current_span("consumer") as consumer:
            for _ in obj.stream(inp, callbacks=[token_handler]):
                body()
            after = trace.get_current_span()
    else:

        async def main() -> tuple[Any, Any]:
            with tracer.start_as_current_span("consumer") as consumer:
                async for _ in obj.astream(inp, callbacks=[token_handler]):
                    body()
                    await asyncio.sleep(0)
                return consumer, trace.get_current_span()

        consumer, after = asyncio.run(main())

    assert len(in_body) == 3
    assert all(span is consumer and run is None for span, run in in_body)
    assert after is consumer
    spans = {s.name: s for s in memory_exporter.get_finished_spans()}
    model_span = spans["text_completion Spy"]
    # while the model computed each chunk, its own span and run were current
    assert len(spy.inside) == 3
    assert all(s.get_span_context().span_id == model_span.context.span_id for s, _ in spy.inside)  # type: ignore[union-attr]
    model_run_id = model_span.attributes["spanhook.run_id"]  # type: ignore[index]
    assert all(str(r) == model_run_id for _, r in spy.inside)
    # handlers get a token inside the model's run, like every other event of that run
    assert len(token_handler.seen) == 3
    assert all(cur == rid for cur, rid in token_handler.seen)
    # and the runs nest under the consumer's span
    top = spans["LLMChain"] if via_chain else model_span
    assert top.parent is not None and top.parent.span_id == consumer.get_span_context().span_id
    assert spanhook.current_run() is None


def test_llm_chain_invoke_with_streaming_model_streams_tokens_to_request_handler(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """``LLMChain`` over a ``streaming=True`` model: ``run()`` returns the whole text and the
    request handler on the chain gets every token (sync and async)."""
    chain = LLMChain(llm=OfflineLLM(streaming=True), prompt=PromptTemplate.from_template("{q}"))
    rec = Recorder()
    assert chain.run(q=PROMPT, callbacks=[rec]) == OFFLINE_ANSWER
    arec = Recorder()
    assert asyncio.run(chain.arun(q=PROMPT, callbacks=[arec])) == OFFLINE_ANSWER
    for r in (rec, arec):
        tokens = [e.kwargs["token"] for e in r.of("on_llm_new_token")]
        assert "".join(tokens) == OFFLINE_ANSWER and len(tokens) == len(OFFLINE_ANSWER.split())
    spans = memory_exporter.get_finished_spans()
    assert all(attr.STREAM_CHUNKS in (s.attributes or {}) for s in spans if s.name != "LLMChain")


def test_model_that_cannot_stream_yields_whole_answer_once(
    memory_exporter: InMemorySpanExporter,
) -> None:
    class Whole(LLM):
        def _call(
            self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
        ) -> str:
            return "all at once"

    rec = Recorder()
    assert list(Whole().stream("x", callbacks=[rec])) == ["all at once"]
    assert [e.kwargs["token"] for e in rec.of("on_llm_new_token")] == ["all at once"]
    (span,) = memory_exporter.get_finished_spans()
    assert (span.attributes or {})[attr.STREAM_CHUNKS] == 1


class CannotOpenStream(LLM):
    """A model whose stream fails before its first chunk, in the call that opens it (a
    plain function, not a generator: e.g. the HTTP request is sent when it is called)."""

    def _call(self, prompt: str, stop: list[str] | None = None, **kwargs: Any) -> str:
        return "unused"

    def _stream(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[GenerationChunk]:
        raise ConnectionError("stream refused")

    def _astream(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[GenerationChunk]:
        raise ConnectionError("astream refused")


@pytest.mark.parametrize("how", ["stream", "invoke(streaming)", "astream", "ainvoke(streaming)"])
def test_a_stream_that_fails_to_open_ends_its_run_with_the_error(
    memory_exporter: InMemorySpanExporter, how: str
) -> None:
    rec = Recorder()
    plain, streaming = CannotOpenStream(), CannotOpenStream(streaming=True)

    async def consume() -> None:
        if how == "astream":
            async for _ in plain.astream("p", callbacks=[rec]):
                pass
        else:
            await streaming.ainvoke("p", callbacks=[rec])

    with pytest.raises(ConnectionError, match="refused"):
        if how == "stream":
            list(plain.stream("p", callbacks=[rec]))
        elif how == "invoke(streaming)":
            streaming.invoke("p", callbacks=[rec])
        else:
            asyncio.run(consume())
    assert rec.names() == ["on_llm_start", "on_llm_error"]
    (span,) = memory_exporter.get_finished_spans()  # ended, not leaked
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[attr.ERROR_TYPE] == "ConnectionError"


# -- an inner stream failing while it is closed --------------------------------------------


class CloseFails(Chain):
    """Streams ``a``, ``b``, ``c``; its inner stream raises while being closed, and notes the
    run current at that moment."""

    input_keys = ["q"]
    output_keys = ["text"]

    def __init__(self) -> None:
        super().__init__()
        self.closed_in: list[Any] = []

    def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        return {"text": "abc"}

    def _stream_outputs(self, chunks: list[Any]) -> dict[str, Any]:
        return {"text": "".join(chunks)}

    def _note_close(self) -> None:
        run = spanhook.current_run()
        self.closed_in.append(run.run_id if run else None)
        raise ValueError("closing failed")

    def _stream_call(self, inputs: dict[str, Any], run: Any) -> Iterator[Any]:
        def gen() -> Iterator[str]:
            try:
                yield from "abc"
            finally:
                self._note_close()

        return gen()

    def _astream_call(self, inputs: dict[str, Any], run: Any) -> AsyncIterator[Any]:
        async def gen() -> AsyncIterator[str]:
            try:
                for ch in "abc":
                    yield ch
            finally:
                self._note_close()

        return gen()


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_chain_stream_whose_inner_stream_fails_on_close_still_closes_cleanly(
    mode: str, memory_exporter: InMemorySpanExporter
) -> None:
    """Closing early, the sync and async chain streams take the same path: the inner
    stream is closed inside the run, its failure while closing does not reach the consumer,
    and the run ends once, marked closed early, with what was streamed."""
    chain = CloseFails()
    rec = Recorder()
    if mode == "stream":
        stream = chain.stream({"q": "x"}, callbacks=[rec])
        first = next(stream)
        stream.close()
    else:

        async def main() -> Any:
            astream = chain.astream({"q": "x"}, callbacks=[rec])
            got = await astream.__anext__()
            await astream.aclose()
            return got

        first = asyncio.run(main())

    assert first == "a"
    ends = rec.of("on_chain_end")
    assert len(ends) == 1 and ends[0].args[0] == {"text": "a"}
    assert rec.of("on_chain_error") == []
    assert chain.closed_in == [ends[0].kwargs["run_id"]]  # closed inside the chain's run
    (span,) = memory_exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert (span.attributes or {})[attr.STREAM_CLOSED_EARLY] is True
    assert spanhook.current_run() is None
