"""RequestLoggerCallbackHandler: one structured logging record per run event, correlated
with the OTel trace, content only on request, JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import Recorder
from spanhook.callbacks import RequestLogger, RequestLoggerCallbackHandler
from spanhook.chains import LLMChain
from spanhook.demo import build_agent
from spanhook.llms import LLM, FakeListLLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.tools import Tool

QUESTION = "What is 12 * (3 + 4)?"
SECRET = "my-private-question"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Any:
    logger = logging.getLogger("test.spanhook.requests")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    cap = Capture()
    logger.addHandler(cap)
    yield logger, cap
    logger.removeHandler(cap)


def events(cap: Capture) -> list[str]:
    return [r.spanhook_event for r in cap.records]  # type: ignore[attr-defined]


def test_agent_run_logs_one_record_per_start_end_with_trace_ids(
    captured: Any, memory_exporter: InMemorySpanExporter
) -> None:
    logger, cap = captured
    rec = Recorder()
    assert build_agent(verbose=False).run(QUESTION, callbacks=[RequestLogger(logger), rec]) == "84"
    assert events(cap) == [
        "agent_start",
        "llm_start",
        "llm_end",
        "agent_action",
        "tool_start",
        "tool_end",
        "llm_start",
        "llm_end",
        "agent_finish",
        "agent_end",
    ]
    spans = {format(s.context.span_id, "016x"): s for s in memory_exporter.get_finished_spans()}
    trace_ids = {format(s.context.trace_id, "032x") for s in spans.values()}
    assert len(trace_ids) == 1
    starts = [e for e in rec.events if e.event.endswith("_start")]
    for r in cap.records:
        assert r.trace_id in trace_ids  # type: ignore[attr-defined]
        span = spans[r.span_id]  # type: ignore[attr-defined]
        # the record's span is the span of the run it talks about
        assert (span.attributes or {})["spanhook.run_id"] == r.run_id  # type: ignore[attr-defined]
        assert r.spanhook["run_id"] == r.run_id  # type: ignore[attr-defined]
    # run ids / parents are the ones handlers see
    start_records = [r for r in cap.records if r.spanhook_event.endswith("_start")]  # type: ignore[attr-defined]
    assert [r.run_id for r in start_records] == [str(e.run_id) for e in starts]  # type: ignore[attr-defined]
    assert [r.parent_run_id for r in start_records] == [  # type: ignore[attr-defined]
        str(e.parent_run_id) if e.parent_run_id else None for e in starts
    ]
    kinds = {r.run_kind for r in cap.records}  # type: ignore[attr-defined]
    assert kinds == {"agent", "llm", "tool"}
    names = [r.run_name for r in start_records]  # type: ignore[attr-defined]
    assert names == ["demo-agent", "OfflineLLM", "calculator", "OfflineLLM"]
    ends = [r for r in cap.records if r.spanhook_event.endswith("_end")]  # type: ignore[attr-defined]
    assert all(isinstance(r.duration_ms, float) and r.duration_ms >= 0 for r in ends)  # type: ignore[attr-defined]
    assert all(r.duration_ms is None for r in start_records)  # type: ignore[attr-defined]
    llm_end = next(r for r in ends if r.run_kind == "llm")  # type: ignore[attr-defined]
    assert llm_end.spanhook["prompt_tokens"] > 0 and llm_end.spanhook["streamed_tokens"] > 0  # type: ignore[attr-defined]
    assert "prompt +" in llm_end.getMessage() and "completion tokens" in llm_end.getMessage()
    assert all(r.levelno == logging.INFO for r in cap.records)
    assert start_records[0].getMessage().startswith("agent 'demo-agent' started [run ")


def test_content_is_not_logged_unless_asked(captured: Any) -> None:
    logger, cap = captured
    chain = LLMChain(
        llm=OfflineLLM(streaming=True), prompt=PromptTemplate.from_template("repeat {q}")
    )
    chain.run(q=SECRET, callbacks=[RequestLogger(logger, log_tokens=True, log_text=True)])
    assert cap.records
    for r in cap.records:
        assert SECRET not in r.getMessage()
        assert SECRET not in json.dumps(r.spanhook, default=str)  # type: ignore[attr-defined]
    token_records = [r for r in cap.records if r.spanhook_event == "llm_token"]  # type: ignore[attr-defined]
    assert token_records and all(r.levelno == logging.DEBUG for r in token_records)
    assert [r.spanhook["token_index"] for r in token_records] == list(range(len(token_records)))  # type: ignore[attr-defined]


def test_content_logged_and_truncated_when_asked(captured: Any) -> None:
    logger, cap = captured
    long_input = "x" * 500
    chain = LLMChain(llm=FakeListLLM(responses=["ok"]), prompt=PromptTemplate.from_template("{q}"))
    chain.run(
        q=long_input, callbacks=[RequestLogger(logger, log_content=True, max_content_length=100)]
    )
    start = next(r for r in cap.records if r.spanhook_event == "chain_start")  # type: ignore[attr-defined]
    assert len(start.spanhook["inputs"]) == 100  # type: ignore[attr-defined]
    assert "truncated" in start.spanhook["inputs"]  # type: ignore[attr-defined]
    llm_start = next(r for r in cap.records if r.spanhook_event == "llm_start")  # type: ignore[attr-defined]
    assert llm_start.spanhook["prompts"].startswith('["xxxx')  # type: ignore[attr-defined]
    llm_end = next(r for r in cap.records if r.spanhook_event == "llm_end")  # type: ignore[attr-defined]
    assert llm_end.spanhook["generations"] == '[["ok"]]'  # type: ignore[attr-defined]


def test_errors_logged_at_error_level_with_type(captured: Any) -> None:
    logger, cap = captured

    def boom(_: str) -> str:
        raise ZeroDivisionError("no way")

    tool = Tool(name="boom", func=boom, description="fails")
    with pytest.raises(ZeroDivisionError):
        tool.run("1/0", callbacks=[RequestLogger(logger, error_level=logging.WARNING)])
    (r,) = [r for r in cap.records if r.spanhook_event == "tool_error"]  # type: ignore[attr-defined]
    assert r.levelno == logging.WARNING
    assert r.error_type == "ZeroDivisionError"  # type: ignore[attr-defined]
    assert r.run_name == "boom" and r.duration_ms is not None  # type: ignore[attr-defined]
    assert (
        "tool 'boom' failed after" in r.getMessage()
        and "ZeroDivisionError: no way" in r.getMessage()
    )


def test_json_lines_mode(captured: Any) -> None:
    _, cap = captured
    buf = io.StringIO()
    handler = RequestLoggerCallbackHandler(json_stream=buf, use_logging=False)
    assert build_agent(verbose=False).run(QUESTION, callbacks=[handler]) == "84"
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert lines[0]["event"] == "agent_start" and lines[-1]["event"] == "agent_end"
    assert len(lines) == 10
    assert {x["trace_id"] for x in lines} == {lines[0]["trace_id"]} and lines[0]["trace_id"]
    assert all(x["ts"] and x["level"] == "INFO" and x["message"] for x in lines)
    assert not cap.records  # use_logging=False: nothing went through logging


def test_broken_json_stream_never_breaks_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError("disk full")

    handler = RequestLogger(json_stream=Broken(), use_logging=False)
    with caplog.at_level(logging.WARNING, logger="spanhook.callbacks"):
        assert OfflineLLM().invoke("1 + 2 = ", callbacks=[handler]) == "3"
        assert OfflineLLM().invoke("1 + 2 = ", callbacks=[handler]) == "3"
    assert handler.write_errors == 4
    assert len([r for r in caplog.records if "JSON line" in r.getMessage()]) == 1


def test_async_and_concurrent_runs_keep_their_own_durations(captured: Any) -> None:
    logger, cap = captured
    handler = RequestLogger(logger)

    async def main() -> list[str]:
        llm = OfflineLLM(streaming=True)
        return await asyncio.gather(
            *(llm.ainvoke(f"What is {i} * 3?", callbacks=[handler]) for i in range(6))
        )

    assert asyncio.run(main()) == [str(i * 3) for i in range(6)]
    starts = {r.run_id for r in cap.records if r.spanhook_event == "llm_start"}  # type: ignore[attr-defined]
    ends = {r.run_id for r in cap.records if r.spanhook_event == "llm_end"}  # type: ignore[attr-defined]
    assert len(starts) == 6 and starts == ends
    assert all(r.duration_ms is not None for r in cap.records if r.spanhook_event == "llm_end")  # type: ignore[attr-defined]
    assert not handler._runs  # no per-run state left behind


def test_default_logger_name_and_bad_arguments() -> None:
    assert RequestLogger().logger.name == "spanhook.requests"
    with pytest.raises(TypeError, match=r"logging\.Logger"):
        RequestLogger(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="json_stream"):
        RequestLogger(use_logging=False)
    with pytest.raises(TypeError, match="file-like"):
        RequestLogger(json_stream="out.jsonl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_content_length"):
        RequestLogger(max_content_length=3)
    with pytest.raises(TypeError, match="level"):
        RequestLogger(level="INFO")  # type: ignore[arg-type]


def test_streamed_chat_model_with_content(captured: Any) -> None:
    from spanhook.chat_models import OfflineChatModel

    logger, cap = captured
    OfflineChatModel(streaming=True).invoke(
        "say hello world", callbacks=[RequestLogger(logger, log_content=True, log_tokens=True)]
    )
    assert events(cap)[0] == "chat_model_start" and events(cap)[-1] == "chat_model_end"
    start = cap.records[0]
    assert start.run_kind == "chat_model"  # type: ignore[attr-defined]
    assert json.loads(start.spanhook["messages"]) == [
        [{"role": "human", "content": "say hello world"}]
    ]  # type: ignore[attr-defined]
    tokens = [r.spanhook["token"] for r in cap.records if r.spanhook_event == "llm_token"]  # type: ignore[attr-defined]
    end = cap.records[-1]
    assert json.loads(end.spanhook["generations"]) == [["".join(tokens)]]  # type: ignore[attr-defined]
    assert end.spanhook["streamed_tokens"] == len(tokens) > 0  # type: ignore[attr-defined]
    assert end.spanhook["completion_tokens"] == len(tokens)  # type: ignore[attr-defined]


class FlakyLLM(LLM):
    """Fails its first call with a ``ConnectionError``, then answers ``ok``."""

    calls = 0

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("flaky")
        return "ok"


def test_a_retry_is_logged_with_its_attempt_and_error_type(captured: Any) -> None:
    logger, cap = captured
    assert FlakyLLM(max_retries=1).invoke("q", callbacks=[RequestLogger(logger)]) == "ok"
    assert events(cap) == ["llm_start", "retry", "llm_end"]
    retry = cap.records[1]
    assert retry.getMessage().startswith("retrying after attempt 1")
    assert (retry.spanhook["attempt"], retry.error_type) == (1, "ConnectionError")  # type: ignore[attr-defined]
    assert retry.run_id == cap.records[0].run_id  # type: ignore[attr-defined]


def test_a_tenacity_retry_state_is_logged_with_its_error_type() -> None:
    import tenacity

    from spanhook.callbacks.logger import retry_fields

    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    assert retry_fields(state) == {"attempt": 1, "error_type": None}
    state.set_exception((TimeoutError, TimeoutError("slow"), None))
    assert retry_fields(state) == {"attempt": 1, "error_type": "TimeoutError"}
