"""Sync and async twins record the same spans: names, attributes, span events and status.

The handler-side parity (events, kwargs, parent links) is ``test_async.py``'s TWINS table;
this compares what the twins put on the spans, which is where a drift between two copies of
an event's recording would show (e.g. a retry's error recorded by one twin only).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhook.chat_models import BaseChatModel
from spanhook.llms import LLM
from spanhook.schema import ChatResult
from test_async import TWINS

#: Attributes whose values legitimately differ between two runs (ids, timing).
_VOLATILE = {"spanhook.run_id", "gen_ai.response.time_to_first_chunk"}
_EXCEPTION_KEEP = {"exception.type", "exception.message", "exception.escaped"}


class Flaky(LLM):
    """Fails its first call of every two, then answers."""

    calls = 0

    def _call(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kw: Any
    ) -> str:
        self.calls += 1
        if self.calls % 2:
            raise ConnectionError("down")
        return "ok"


flaky = Flaky(max_retries=1)
CASES = {
    **TWINS,
    "retry": (
        lambda cb: flaky.invoke("x", callbacks=cb),
        lambda cb: flaky.ainvoke("x", callbacks=cb),
    ),
}


def _norm_attrs(attrs: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(attrs or {}).items() if k not in _VOLATILE}


def _event(e: Any) -> tuple[str, dict[str, Any]]:
    attrs = _norm_attrs(e.attributes)
    if e.name == "exception":  # its stack trace differs between the twins
        attrs = {k: v for k, v in attrs.items() if k in _EXCEPTION_KEEP}
    return e.name, attrs


def spans(exporter: InMemorySpanExporter) -> list[tuple[Any, ...]]:
    """The finished spans in a comparable form: name, attributes, events (an ``exception``
    event by type and message), status with its description."""
    out = []
    for s in exporter.get_finished_spans():
        events = [_event(e) for e in s.events]
        status = (s.status.status_code, s.status.description)
        out.append((s.name, _norm_attrs(s.attributes), events, status))
    return sorted(out, key=repr)


@pytest.mark.parametrize("name", list(CASES))
def test_async_twin_records_the_same_spans(
    name: str, memory_exporter: InMemorySpanExporter
) -> None:
    sync_call, async_call = CASES[name]
    sync_call([])
    sync_spans = spans(memory_exporter)
    memory_exporter.clear()
    asyncio.run(async_call([]))  # type: ignore[arg-type]
    assert sync_spans, "the sync twin recorded no span"
    assert spans(memory_exporter) == sync_spans


def test_a_retry_records_its_attempt_and_error_in_both_twins(
    memory_exporter: InMemorySpanExporter,
) -> None:
    flaky.invoke("x")
    asyncio.run(flaky.ainvoke("x"))
    retries = [
        dict(e.attributes or {})
        for s in memory_exporter.get_finished_spans()
        for e in s.events
        if e.name == "spanhook.retry"
    ]
    assert len(retries) == 2
    for r in retries:
        assert r["spanhook.retry.attempt"] == 1
        assert "ConnectionError" in str(r["spanhook.retry.error"])


class NumberLLM(LLM):
    """A custom model whose ``_call`` returns the wrong type."""

    def _call(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kw: Any
    ) -> str:
        return 42  # type: ignore[return-value]


class AsyncNumberLLM(NumberLLM):
    async def _acall(
        self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kw: Any
    ) -> str:
        return 42  # type: ignore[return-value]


class DictChat(BaseChatModel):
    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return {"text": "not a ChatResult"}  # type: ignore[return-value]


class AsyncDictChat(DictChat):
    async def _agenerate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return {"text": "not a ChatResult"}  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (NumberLLM(), "NumberLLM._call must return a str, got int"),
        (AsyncNumberLLM(), "AsyncNumberLLM.{} must return a str, got int"),
        (DictChat(), "DictChat._generate must return a ChatResult, got dict"),
        (AsyncDictChat(), "AsyncDictChat.{} must return a ChatResult, got dict"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)
def test_a_custom_model_returning_the_wrong_type_fails_its_run_the_same_way_in_both_twins(
    model: Any, message: str, memory_exporter: InMemorySpanExporter
) -> None:
    """The check lives once: the sync and the async twin both end the run in error with a
    message naming the hook the model implements."""
    own_async = isinstance(model, (AsyncNumberLLM, AsyncDictChat))
    sync_hook, async_hook = (
        ("_call", "_acall") if isinstance(model, LLM) else ("_generate", "_agenerate")
    )
    with pytest.raises(TypeError) as sync_error:
        model.invoke("hi")
    with pytest.raises(TypeError) as async_error:
        asyncio.run(model.ainvoke("hi"))
    assert str(sync_error.value) == message.format(sync_hook)
    assert str(async_error.value) == message.format(async_hook if own_async else sync_hook)
    failed = memory_exporter.get_finished_spans()
    assert len(failed) == 2
    assert all(s.status.status_code.name == "ERROR" for s in failed)
    assert {s.attributes["error.type"] for s in failed} == {"TypeError"}  # type: ignore[index]
