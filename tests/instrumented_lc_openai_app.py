"""A langchain-core app whose chat model calls the openai SDK (as langchain-openai's does),
with OpenLLMetry's instrumentation of the SDK and spanhook.langchain both on, for
tests/test_langchain_models.py. Its own process: instrumenting the SDK patches it
process-wide.

Usage: ``python instrumented_lc_openai_app.py <base_url>``; prints one JSON line: the
finished spans (name, span id, parent span id) of two phases, ``suppressed`` (the default)
and ``kept`` (``instrument(suppress_provider_spans=False)``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

import spanhook.langchain
from instrumented_openai_app import instrumented, rows


class SDKChat(BaseChatModel):
    base_url: str

    @property
    def _llm_type(self) -> str:
        return "sdk-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": "test-model"}

    def _body(self, messages: list[BaseMessage]) -> dict[str, Any]:
        turns = [{"role": "user", "content": str(m.content)} for m in messages]
        return {"model": "test-model", "messages": turns}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        client = openai.OpenAI(base_url=self.base_url, api_key="sk-test", max_retries=0)
        out = client.chat.completions.create(**self._body(messages))
        text = out.choices[0].message.content or ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key="sk-test", max_retries=0)
        out = await client.chat.completions.create(**self._body(messages))
        text = out.choices[0].message.content or ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        client = openai.OpenAI(base_url=self.base_url, api_key="sk-test", max_retries=0)
        for part in client.chat.completions.create(**self._body(messages), stream=True):
            if part.choices and part.choices[0].delta.content:
                chunk = AIMessageChunk(content=part.choices[0].delta.content)
                yield ChatGenerationChunk(message=chunk)


def main(base_url: str) -> None:
    exporter = instrumented()
    spanhook.langchain.instrument()

    model = SDKChat(base_url=base_url)
    model.invoke("whole")
    "".join(str(c.content) for c in model.stream("streamed"))
    asyncio.run(model.ainvoke("async"))
    direct = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    direct.chat.completions.create(model="m", messages=[{"role": "user", "content": "direct"}])
    suppressed = rows(exporter.get_finished_spans())
    exporter.clear()

    spanhook.langchain.instrument(suppress_provider_spans=False)
    model.invoke("kept")
    kept = rows(exporter.get_finished_spans())
    print(json.dumps({"suppressed": suppressed, "kept": kept}))


if __name__ == "__main__":
    main(sys.argv[1])
