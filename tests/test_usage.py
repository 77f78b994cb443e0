"""UsageCallbackHandler / get_usage_callback: token totals that stay right with streaming,
agents, threads and asyncio, checked against the gen_ai.usage.* attributes of the exported
spans (what a tracing backend would show)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhook.callbacks import UsageCallbackHandler, get_usage_callback
from spanhook.chat_models import OfflineChatModel
from spanhook.demo import build_agent
from spanhook.llms import OfflineLLM
from spanhook.llms.offline import count_tokens, respond
from spanhook.runtime.scope import SCOPED_HANDLERS, handlers_in_scope

IN, OUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"


def span_usage(exporter: InMemorySpanExporter) -> tuple[int, int, int]:
    """(input tokens, output tokens, model spans) summed over the exported spans."""
    ins = outs = calls = 0
    for span in exporter.get_finished_spans():
        attrs = span.attributes or {}
        if IN in attrs:
            calls += 1
            ins += int(attrs[IN])  # type: ignore[arg-type]
            outs += int(attrs.get(OUT, 0))  # type: ignore[arg-type]
    return ins, outs, calls


def assert_matches_spans(
    cb: UsageCallbackHandler, exporter: InMemorySpanExporter, calls: int
) -> None:
    ins, outs, n = span_usage(exporter)
    assert n == calls
    assert cb.successful_requests == calls
    assert cb.prompt_tokens == ins > 0
    assert cb.completion_tokens == outs > 0
    assert cb.total_tokens == ins + outs


async def _adrain(agen: Any) -> list[Any]:
    return [c async for c in agen]


CASES: dict[str, Callable[[], Any]] = {
    "llm invoke": lambda: OfflineLLM().invoke("1 + 2 = "),
    "llm streaming=True invoke": lambda: OfflineLLM(streaming=True).invoke("What is 6 * 7?"),
    "llm stream()": lambda: list(OfflineLLM().stream("What is 6 * 7 and why?")),
    "llm astream()": lambda: asyncio.run(_adrain(OfflineLLM().astream("What is 6 * 7 and why?"))),
    "llm streaming=True ainvoke": lambda: asyncio.run(
        OfflineLLM(streaming=True).ainvoke("tell me a story")
    ),
    "chat invoke": lambda: OfflineChatModel().invoke("1 + 2 = "),
    "chat streaming=True invoke": lambda: OfflineChatModel(streaming=True).invoke(
        "say hello world"
    ),
    "chat stream()": lambda: list(OfflineChatModel().stream("say hello world")),
    "chat astream()": lambda: asyncio.run(_adrain(OfflineChatModel().astream("say hello world"))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_totals_equal_exported_span_usage(case: str, memory_exporter: InMemorySpanExporter) -> None:
    with get_usage_callback() as cb:
        CASES[case]()
    assert_matches_spans(cb, memory_exporter, calls=1)


def test_streamed_and_plain_calls_count_the_same() -> None:
    prompt = "What is 6 * 7 and why?"
    with get_usage_callback() as plain:
        OfflineLLM().invoke(prompt)
    with get_usage_callback() as streamed:
        list(OfflineLLM().stream(prompt))
    with get_usage_callback() as flagged:
        OfflineLLM(streaming=True).invoke(prompt)
    expected = (count_tokens(prompt), count_tokens(respond(prompt)))
    for cb in (plain, streamed, flagged):
        assert (cb.prompt_tokens, cb.completion_tokens) == expected
        assert cb.successful_requests == 1


def test_agent_with_streaming_model_counts_every_llm_call(
    memory_exporter: InMemorySpanExporter,
) -> None:
    with get_usage_callback() as cb:
        assert build_agent(verbose=False).run("What is 12 * (3 + 4)?") == "84"
    assert_matches_spans(cb, memory_exporter, calls=2)


def test_async_agent(memory_exporter: InMemorySpanExporter) -> None:
    async def main() -> tuple[str, UsageCallbackHandler]:
        with get_usage_callback() as cb:
            answer = await build_agent(verbose=False).arun("What is 12 * (3 + 4)?")
        return answer, cb

    answer, cb = asyncio.run(main())
    assert answer == "84"
    assert_matches_spans(cb, memory_exporter, calls=2)


def test_batch_worker_threads_are_counted(memory_exporter: InMemorySpanExporter) -> None:
    prompts = [f"What is {i} * 7?" for i in range(12)]
    seen_threads: set[int] = set()

    class Threads(UsageCallbackHandler):
        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            seen_threads.add(threading.get_ident())
            super().on_llm_end(response, **kwargs)

    with get_usage_callback(Threads()) as cb:
        out = OfflineLLM(streaming=True).batch(prompts, max_concurrency=4)
    assert out == [str(i * 7) for i in range(12)]
    assert len(seen_threads) > 1, "batch should run in several worker threads"
    assert_matches_spans(cb, memory_exporter, calls=12)


def test_async_tasks_created_inside_the_block_are_counted(
    memory_exporter: InMemorySpanExporter,
) -> None:
    async def main() -> UsageCallbackHandler:
        llm = OfflineLLM(streaming=True)
        with get_usage_callback() as cb:
            tasks = [asyncio.create_task(llm.ainvoke(f"What is {i} + 1?")) for i in range(5)]
        await asyncio.gather(*tasks)  # awaited outside the block: tasks keep its context
        return cb

    cb = asyncio.run(main())
    assert_matches_spans(cb, memory_exporter, calls=5)


def test_only_runs_inside_the_block_are_counted() -> None:
    llm = OfflineLLM()
    with get_usage_callback() as cb:
        llm.invoke("1 + 1 = ")
    llm.invoke("1 + 1 = ")
    assert cb.successful_requests == 1
    assert SCOPED_HANDLERS.get() == ()


def test_nested_blocks_and_block_inside_a_run() -> None:
    llm = OfflineLLM()
    with get_usage_callback() as outer:
        llm.invoke("1 + 1 = ")
        with get_usage_callback() as inner:
            llm.invoke("2 + 2 = ")
    assert (outer.successful_requests, inner.successful_requests) == (2, 1)

    # a block opened inside a running tool still sees the model calls it makes
    from spanhook.tools import Tool

    counted: list[UsageCallbackHandler] = []

    def ask(q: str) -> str:
        with get_usage_callback() as cb:
            out = llm.invoke(q)
        counted.append(cb)
        return out

    assert Tool(name="ask", func=ask, description="asks").run("3 + 3 = ") == "6"
    assert counted[0].successful_requests == 1
    assert counted[0].prompt_tokens == count_tokens("3 + 3 = ")


def test_handler_also_works_as_a_plain_callback() -> None:
    cb = UsageCallbackHandler()
    OfflineChatModel(streaming=True).invoke("say hello world", callbacks=[cb])
    assert cb.successful_requests == 1
    assert cb.completion_tokens == count_tokens(respond("Human: say hello world"))
    assert cb.by_model == {"spanhook-offline-1-chat": cb.usage}


def test_failed_requests_are_counted_and_tokens_of_partial_stream_are_not() -> None:
    with get_usage_callback() as cb, pytest.raises(RuntimeError, match="fail_after"):
        OfflineLLM(streaming=True, fail_after=2).invoke("tell me a story")
    assert (cb.failed_requests, cb.successful_requests, cb.total_tokens) == (1, 0, 0)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="UsageCallbackHandler"), get_usage_callback(object()):  # type: ignore[arg-type]
        pass
    with pytest.raises(TypeError, match="callback handlers"), handlers_in_scope(42):
        pass


def test_handler_in_scope_and_passed_as_callback_counts_once() -> None:
    with get_usage_callback() as cb:
        build_agent(verbose=False).run("What is 12 * (3 + 4)?", callbacks=[cb])
    assert cb.successful_requests == 2
