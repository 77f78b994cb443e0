"""The helpers the models share: ``flow.in_worker`` (the default async twin of a sync hook),
and the offline answer, token usage and paced streams that ``OfflineLLM`` and
``OfflineChatModel`` both use."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest

import spanhook
from spanhook.chat_models import OfflineChatModel, SimpleChatModel
from spanhook.flow import in_worker
from spanhook.llms import LLM, OfflineLLM
from spanhook.llms.offline import answer, apaced, paced, token_usage
from spanhook.runtime.run import Run
from spanhook.schema import HumanMessage, get_buffer_string

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_in_worker_runs_in_another_thread_with_the_callers_context() -> None:
    def work(a: int, *, b: int) -> tuple[int, str, int]:
        return a + b, VAR.get(), threading.get_ident()

    async def main() -> tuple[int, str, int]:
        VAR.set("caller")
        return await in_worker(work, 1, b=2)

    total, seen, thread = asyncio.run(main())
    assert (total, seen) == (3, "caller")
    assert thread != threading.get_ident()


def test_in_worker_raises_the_calls_exception() -> None:
    def boom() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        asyncio.run(in_worker(boom))


MAIN = threading.get_ident()


def _reply(text: str, run_manager: Run | None) -> str:
    """``text``, and whether it was made off the main thread, inside the model's run."""
    run = spanhook.current_run()
    assert run is not None and run is run_manager
    return f"{text}:{threading.get_ident() != MAIN}"


class _SyncOnlyLLM(LLM):
    def _call(
        self, prompt: str, stop: list[str] | None = None, run_manager: Run | None = None, **_: Any
    ) -> str:
        return _reply(prompt, run_manager)


class _SyncOnlyChat(SimpleChatModel):
    def _call(
        self, messages: Any, stop: list[str] | None = None, run_manager: Run | None = None, **_: Any
    ) -> str:
        return _reply(messages[0].content, run_manager)


@pytest.mark.parametrize("model", [_SyncOnlyLLM(), _SyncOnlyChat()], ids=["llm", "chat"])
def test_ainvoke_of_a_sync_only_model_runs_its_hook_in_a_worker_inside_the_run(model: Any) -> None:
    out = asyncio.run(model.ainvoke("hi"))
    assert getattr(out, "content", out) == "hi:True"


@pytest.mark.parametrize("stop", [None, ["\n"], ["Action:"]])
def test_offline_llm_and_chat_model_answer_alike(stop: list[str] | None) -> None:
    prompt = "Answer with the following tools:\n  calculator: does math\n\nQuestion: what is 2 + 3?"
    expected = answer(prompt, stop)
    assert OfflineLLM().invoke(prompt, stop=stop) == expected
    assert OfflineChatModel().invoke(prompt, stop=stop).content == expected
    assert "".join(OfflineLLM().stream(prompt, stop=stop)) == expected
    assert "".join(str(c.content) for c in OfflineChatModel().stream(prompt, stop=stop)) == expected
    if stop == ["Action:"]:
        assert "Action:" not in expected


def test_offline_token_usage_is_the_same_streamed_or_not() -> None:
    prompt = "What is 6 * 7 and why?"
    transcript = get_buffer_string([HumanMessage(content=prompt)])  # what the chat model reads
    usage = token_usage(transcript, answer(transcript, None))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    chunks = list(OfflineChatModel().stream(prompt))
    streamed = chunks[-1].usage_metadata
    whole = OfflineChatModel().invoke(prompt).usage_metadata  # type: ignore[attr-defined]
    expected = {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
    }
    assert streamed == whole == expected


def test_paced_streams_fail_in_place_of_chunk_fail_after() -> None:
    got: list[int] = []
    with pytest.raises(RuntimeError, match="failed after 2 tokens"):
        for item in paced([10, 11, 12, 13], 0.0, fail_after=2):
            got.append(item)
    assert got == [10, 11]

    async def main() -> list[int]:
        out: list[int] = []
        with pytest.raises(RuntimeError, match="failed after 2 tokens"):
            async for item in apaced([10, 11, 12, 13], 0.0, fail_after=2):
                out.append(item)
        return out

    assert asyncio.run(main()) == [10, 11]
    assert list(paced("abc", 0.0)) == ["a", "b", "c"]
