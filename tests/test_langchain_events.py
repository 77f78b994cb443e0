"""Events inside a langchain-core run become span events on that run's span, as they do for
native runs: custom events (sync and async), text, agent actions and finishes, and retries
reported by tenacity the way langchain-core's retry decorator reports them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import tenacity
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import (
    CallbackManager,
    CallbackManagerForLLMRun,
    CallbackManagerForToolRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.language_models import LLM
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")


def _events(exporter: InMemorySpanExporter, span_name: str) -> list[tuple[str, dict[str, Any]]]:
    spans: list[ReadableSpan] = [s for s in exporter.get_finished_spans() if s.name == span_name]
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    return [(e.name, dict(e.attributes or {})) for e in spans[0].events]


def test_custom_events_sync_and_async(traced: InMemorySpanExporter) -> None:
    def report(x: int, config: RunnableConfig) -> int:
        dispatch_custom_event("progress", {"done": x}, config=config)
        return x

    async def areport(x: int, config: RunnableConfig) -> int:
        await adispatch_custom_event("aprogress", {"done": x}, config=config)
        return x

    with spanhook.capture_content(True):
        RunnableLambda(report).invoke(1)
        asyncio.run(RunnableLambda(areport).ainvoke(2))
    (name, attrs), *rest = _events(traced, "report")
    assert (name, attrs["spanhook.event.name"], rest) == ("spanhook.custom_event", "progress", [])
    assert attrs["spanhook.data"] == '{"done": 1}'
    (aname, aattrs), *arest = _events(traced, "areport")
    assert (aname, aattrs["spanhook.event.name"], arest) == (
        "spanhook.custom_event",
        "aprogress",
        [],
    )


class Noting(BaseTool):
    name: str = "noting"
    description: str = "writes a note through its run manager"

    def _run(self, q: str, run_manager: CallbackManagerForToolRun | None = None) -> str:
        assert run_manager is not None
        run_manager.on_text(f"looking up {q}")
        return "found"


def test_text_from_a_tool(traced: InMemorySpanExporter) -> None:
    with spanhook.capture_content(True):
        assert Noting().invoke("widgets") == "found"
    assert _events(traced, "execute_tool noting") == [
        ("spanhook.text", {"spanhook.text": "looking up widgets"})
    ]


def test_agent_action_and_finish_on_a_chain_run(traced: InMemorySpanExporter) -> None:
    manager = CallbackManager.configure(None, None)
    run = manager.on_chain_start({"name": "agent"}, {"input": "q"}, name="agent")
    run.on_agent_action(AgentAction("search", {"q": "widgets"}, "thinking"))
    run.on_agent_finish(AgentFinish({"output": "42"}, "done"))
    run.on_chain_end({"output": "42"})
    events = _events(traced, "agent")
    assert [n for n, _ in events] == ["spanhook.agent.action", "spanhook.agent.finish"]
    assert events[0][1]["gen_ai.tool.name"] == "search"


class FlakyLLM(LLM):
    """Fails its first two attempts; retries the way langchain-core's retry decorator does
    (tenacity, with ``run_manager.on_retry(retry_state)`` before each sleep), without its
    four-second minimum wait."""

    attempts: int = 0

    @property
    def _llm_type(self) -> str:
        return "flaky"

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        assert run_manager is not None
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(ConnectionError),
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
            before_sleep=run_manager.on_retry,
            reraise=True,
        )
        return retrying(self._attempt)

    def _attempt(self) -> str:
        self.attempts += 1
        if self.attempts < 3:
            raise ConnectionError(f"attempt {self.attempts} refused")
        return "ok"


def test_retries_reported_by_tenacity(traced: InMemorySpanExporter) -> None:
    assert FlakyLLM().invoke("p") == "ok"
    events = _events(traced, "text_completion flaky")
    assert [(n, a["spanhook.retry.attempt"]) for n, a in events] == [
        ("spanhook.retry", 1),
        ("spanhook.retry", 2),
    ]
    assert [a["spanhook.retry.error"] for _, a in events] == [
        "ConnectionError('attempt 1 refused')",
        "ConnectionError('attempt 2 refused')",
    ]


# -- the other way: spanhook's own retries, read by a handler written for langchain-core ---


def test_native_retry_state_reads_as_tenacity_for_langchain_core_tracers() -> None:
    from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

    from spanhook.llms import LLM as NativeLLM

    class Flaky(NativeLLM):
        calls = 0

        def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
            self.calls += 1
            if self.calls < 3:
                raise ConnectionError(f"attempt {self.calls}")
            return "ok"

    collector = RunCollectorCallbackHandler()
    assert Flaky(max_retries=2).invoke("x", callbacks=[collector]) == "ok"
    (run,) = collector.traced_runs
    retries = [e["kwargs"] for e in run.events if e["name"] == "retry"]
    assert retries == [
        {
            "slept": 0.0,
            "attempt": n,
            "outcome": "failed",
            "exception": f"attempt {n}",
            "exception_type": "ConnectionError",
        }
        for n in (1, 2)
    ]
