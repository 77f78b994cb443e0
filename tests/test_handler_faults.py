"""Handler faults stay with the handler.

A handler raising ``BaseException`` (``KeyboardInterrupt``, ``SystemExit``): the exception
reaches the caller, every handler that saw a start gets exactly one end or error, none gets
an error without a start, and the span ends. A handler mutating the containers it receives
cannot change what the caller gets.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from helpers import AsyncRecorder, Recorder
from spanhook.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.chains import Chain
from spanhook.llms import OfflineLLM
from spanhook.retrievers import InMemoryRetriever
from spanhook.schema import LLMResult


class Talker(Chain):
    input_keys: ClassVar[list[str]] = ["x"]
    output_keys: ClassVar[list[str]] = ["y"]

    def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
        if run_manager is not None:
            run_manager.on_text("hello")
        return {"y": inputs["x"] * 2}


class Interrupter(Recorder):
    """Records like a Recorder, then raises ``exc`` from ``event``."""

    def __init__(self, event: str, exc: BaseException) -> None:
        super().__init__("interrupter")
        self.event, self.exc = event, exc
        setattr(self, event, self._raise)

    def _raise(self, *args: Any, **kwargs: Any) -> None:
        self._record(self.event, args, kwargs)
        raise self.exc


def _balanced(rec: Recorder) -> None:
    """Each run the handler saw start ended or failed exactly once, and nothing else."""
    starts = Counter(e.run_id for e in rec.events if e.event.endswith("_start"))
    ends = Counter(e.run_id for e in rec.events if e.event.endswith(("_end", "_error")))
    assert starts and starts == ends, rec.names()


@pytest.mark.parametrize("event", ["on_chain_start", "on_text", "on_chain_end", "on_chain_error"])
@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_from_a_handler_reaches_the_caller_and_every_run_closes(
    event: str, exc_type: type[BaseException], memory_exporter: InMemorySpanExporter
) -> None:
    bad = Interrupter(event, exc_type("from handler"))
    before, after = Recorder("before"), Recorder("after")

    class Failing(Talker):
        def _call(self, inputs: dict[str, Any], run_manager: Any = None) -> dict[str, Any]:
            raise ValueError("the chain failed")

    chain = Failing() if event == "on_chain_error" else Talker()
    with pytest.raises(exc_type, match="from handler"):
        chain.invoke({"x": 1}, callbacks=[before, bad, after])
    for rec in (before, bad, after):
        _balanced(rec)
        assert rec.names()[0] == "on_chain_start"
    assert before.names() == after.names()
    (span,) = memory_exporter.get_finished_spans()
    assert span.end_time is not None
    if event != "on_chain_end":
        assert span.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("event", ["on_chain_start", "on_chain_end"])
@pytest.mark.parametrize("handler_kind", ["sync", "async", "inline"])
def test_a_base_exception_from_a_handler_in_an_async_run(
    event: str, handler_kind: str, memory_exporter: InMemorySpanExporter
) -> None:
    class AsyncInterrupter(AsyncRecorder):
        async def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
            self._record("on_chain_start", args, kwargs)
            if event == "on_chain_start":
                raise KeyboardInterrupt("from handler")

        async def on_chain_end(self, *args: Any, **kwargs: Any) -> None:
            self._record("on_chain_end", args, kwargs)
            raise KeyboardInterrupt("from handler")

    if handler_kind == "async":
        bad: Any = AsyncInterrupter()
    else:
        bad = Interrupter(event, KeyboardInterrupt("from handler"))
        bad.run_inline = handler_kind == "inline"
    others = [Recorder("sync"), AsyncRecorder("async")]

    with pytest.raises(KeyboardInterrupt, match="from handler"):
        asyncio.run(Talker().ainvoke({"x": 1}, callbacks=[bad, *others]))
    for rec in (bad, *others):
        _balanced(rec)
    (span,) = memory_exporter.get_finished_spans()
    assert span.end_time is not None


def test_a_raise_error_handler_stops_the_run_but_the_others_still_get_the_start() -> None:
    class Strict(BaseCallbackHandler):
        raise_error = True

        def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("rejected")

    after = Recorder()
    with pytest.raises(RuntimeError, match="rejected"):
        Talker().invoke({"x": 1}, callbacks=[Strict(), after])
    assert after.names() == ["on_chain_start", "on_chain_error"]


class Vandal(BaseCallbackHandler):
    """Mutates every container it receives."""

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        inputs["x"] = "vandalized"
        serialized.clear()

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        outputs["y"] = "vandalized"

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        response.generations.clear()

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        documents.clear()


class AsyncVandal(AsyncCallbackHandler):
    async def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        outputs["y"] = "vandalized"


def test_a_handler_mutating_what_it_receives_cannot_change_the_result() -> None:
    inputs = {"x": 21}
    assert Talker().invoke(inputs, callbacks=[Vandal()]) == {"x": 21, "y": 42}
    assert inputs == {"x": 21}
    assert asyncio.run(Talker().ainvoke({"x": 2}, callbacks=[AsyncVandal(), Vandal()])) == {
        "x": 2,
        "y": 4,
    }
    result = OfflineLLM().generate(["1 + 1 = "], callbacks=[Vandal()])
    assert isinstance(result, LLMResult) and len(result.generations) == 1
    docs = InMemoryRetriever(["red apples", "red cherries"], k=2).invoke(
        "red", callbacks=[Vandal()]
    )
    assert len(docs) == 2
