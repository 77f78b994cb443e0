"""AsyncIteratorCallbackHandler: tokens of *every* model call of a request, ending when the
outermost run ends, errors raised, results kept, sync runs in threads supported."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from helpers import Recorder
from spanhook.callbacks import AsyncIteratorCallbackHandler
from spanhook.chains import LLMChain
from spanhook.demo import build_agent
from spanhook.llms import FakeListLLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.schema import LLMResult
from spanhook.tools import Tool

QUESTION = "What is 12 * (3 + 4)?"


def llm_texts(rec: Recorder) -> list[str]:
    """What each model call produced, from an independent recorder."""
    return [e.args[0].generations[0][0].text for e in rec.of("on_llm_end")]


async def consume(
    handler: AsyncIteratorCallbackHandler, task: asyncio.Future[Any] | None = None
) -> list[str]:
    return [t async for t in handler.aiter(task)]


def test_agent_with_two_llm_calls_streams_both_and_stops_after_the_agent() -> None:
    async def main() -> tuple[list[str], str, Recorder, AsyncIteratorCallbackHandler]:
        handler, rec = AsyncIteratorCallbackHandler(), Recorder()
        agent = build_agent(verbose=False)
        task = asyncio.create_task(agent.arun(QUESTION, callbacks=[handler, rec]))
        tokens = await consume(handler)  # no task given: ends by the outermost run alone
        # iteration stopped because the agent run ended (its output is known), not earlier
        assert handler.done and handler.output == {"output": "84"}
        return tokens, await task, rec, handler

    tokens, answer, rec, handler = asyncio.run(main())
    texts = llm_texts(rec)
    assert len(texts) == 2, "the demo agent calls its model twice"
    assert "".join(tokens) == "".join(texts)
    streamed = [e.kwargs["token"] for e in rec.of("on_llm_new_token")]
    assert tokens == streamed
    assert answer == "84" and texts[1].endswith("Final Answer: 84")
    # nothing lost: both model results and the agent's output are kept
    assert [r.generations[0][0].text for r in handler.llm_results] == texts
    assert all(isinstance(r, LLMResult) for r in handler.llm_results)
    assert handler.output == {"output": "84"}


def test_iterator_ends_only_after_the_last_llm_call() -> None:
    """The consumer is slow: if iteration ended at the first model's end, the second call's
    tokens would be missing."""

    async def main() -> tuple[list[str], list[str]]:
        handler, rec = AsyncIteratorCallbackHandler(), Recorder()
        agent = build_agent(verbose=False)
        task = asyncio.create_task(agent.arun(QUESTION, callbacks=[handler, rec]))
        out: list[str] = []
        async for token in handler.aiter():
            out.append(token)
            await asyncio.sleep(0)
        await task
        return out, llm_texts(rec)

    tokens, texts = asyncio.run(main())
    assert "".join(tokens).endswith("Final Answer: 84")
    assert "".join(tokens) == "".join(texts)


def test_sync_run_in_a_thread() -> None:
    async def main() -> tuple[list[str], str, list[str]]:
        handler, rec = AsyncIteratorCallbackHandler(), Recorder()
        agent = build_agent(verbose=False)
        task = asyncio.ensure_future(
            asyncio.to_thread(agent.run, QUESTION, callbacks=[handler, rec])
        )
        tokens = await consume(handler, task)
        return tokens, await task, llm_texts(rec)

    tokens, answer, texts = asyncio.run(main())
    assert answer == "84"
    assert len(texts) == 2
    assert "".join(tokens) == "".join(texts)


def test_consumer_started_after_the_run_finished_still_gets_everything() -> None:
    async def main() -> tuple[list[str], str]:
        handler = AsyncIteratorCallbackHandler()
        answer = await build_agent(verbose=False).arun(QUESTION, callbacks=[handler])
        return await consume(handler), answer

    tokens, answer = asyncio.run(main())
    assert "".join(tokens).endswith(f"Final Answer: {answer}")


def test_error_in_the_outermost_run_is_raised_after_the_tokens_before_it() -> None:
    async def main() -> tuple[list[str], BaseException, BaseException]:
        handler = AsyncIteratorCallbackHandler()
        llm = OfflineLLM(streaming=True, fail_after=3)
        task = asyncio.create_task(llm.ainvoke("tell me a story", callbacks=[handler]))
        got: list[str] = []
        with pytest.raises(RuntimeError, match="fail_after") as raised:
            async for t in handler.aiter():
                got.append(t)
        with pytest.raises(RuntimeError) as from_task:
            await task
        return got, raised.value, from_task.value

    got, raised, from_task = asyncio.run(main())
    assert got == ["You", " said:", " tell"]  # the offline model's first three tokens
    assert raised is from_task


def test_error_in_a_nested_run_that_the_chain_survives_does_not_stop_iteration() -> None:
    def flaky(q: str) -> str:
        raise ValueError("tool is down")

    class Survives(LLMChain):
        def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
            with pytest.raises(ValueError, match="tool is down"):
                Tool(name="flaky", func=flaky, description="fails").run("x")
            return super()._call(inputs, run_manager)

    async def main() -> list[str]:
        handler = AsyncIteratorCallbackHandler()
        chain = Survives(
            llm=OfflineLLM(streaming=True), prompt=PromptTemplate.from_template("say {w}")
        )
        task = asyncio.ensure_future(
            asyncio.to_thread(chain.run, w="hi there", callbacks=[handler])
        )
        out = await consume(handler, task)
        await task
        return out

    assert "".join(asyncio.run(main())) == "You said: say hi there"


def test_non_streaming_model_text_is_not_lost() -> None:
    async def main() -> tuple[list[str], AsyncIteratorCallbackHandler]:
        handler = AsyncIteratorCallbackHandler()
        await FakeListLLM(responses=["the whole answer"]).ainvoke("q", callbacks=[handler])
        return await consume(handler), handler

    tokens, handler = asyncio.run(main())
    assert tokens == ["the whole answer"]
    assert len(handler.llm_results) == 1

    async def skip() -> list[str]:
        handler = AsyncIteratorCallbackHandler(include_non_streamed=False)
        await FakeListLLM(responses=["x"]).ainvoke("q", callbacks=[handler])
        return await consume(handler)

    assert asyncio.run(skip()) == []


def test_task_that_fails_before_any_run_does_not_hang_the_iterator() -> None:
    async def main() -> None:
        handler = AsyncIteratorCallbackHandler()
        llm = OfflineLLM(streaming=True)
        task = asyncio.create_task(llm.ainvoke(12345, callbacks=[handler]))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="prompt string"):
            await asyncio.wait_for(consume(handler, task), timeout=10)
        with pytest.raises(TypeError):
            await task

    asyncio.run(main())


def test_several_top_level_runs_with_task() -> None:
    async def main() -> list[str]:
        handler = AsyncIteratorCallbackHandler()
        llm = OfflineLLM(streaming=True)
        task = asyncio.create_task(llm.agenerate(["1 + 1 = ", "2 + 2 = "], callbacks=[handler]))
        out = await consume(handler, task)
        await task
        return out

    assert sorted(asyncio.run(main())) == ["2", "4"]


def test_single_consumer_and_argument_checks() -> None:
    async def main() -> None:
        handler = AsyncIteratorCallbackHandler()
        it = handler.aiter()
        await OfflineLLM().ainvoke("1 + 1 = ", callbacks=[handler])
        assert [t async for t in it] == ["2"]
        with pytest.raises(RuntimeError, match="only once"):
            await handler.aiter().__anext__()
        with pytest.raises(TypeError, match="Task or Future"):
            await AsyncIteratorCallbackHandler().aiter("nope").__anext__()  # type: ignore[arg-type]

    asyncio.run(main())
