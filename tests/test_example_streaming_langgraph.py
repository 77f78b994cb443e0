"""The LangGraph streaming example, used as a person would: ``python -m
examples.streaming_langgraph`` in a child process, its page in real headless Chromium over a
real WebSocket on 127.0.0.1, its spans over real OTLP/gRPC to a receiver on 127.0.0.1."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

import pytest
import websockets.sync.client

from browser_harness import ask, headless_chromium, open_page, watch
from collector_harness import REPO_ROOT, GrpcTraceReceiver, ReceivedSpan
from example_runner import serve_example

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the examples package, for the expected token streams

EXAMPLE = "streaming_langgraph"
QUESTION_A, ANSWER_A = "What is 12 * (3 + 4)?", "The answer is 84"
TOOL_A = "calculator({'expression': '12 * (3 + 4)'}) → 84"
QUESTION_B = "What is a span?"
ANSWER_B = "The answer is span: one timed operation of a trace, with attributes and events"
TOOL_B = (
    "glossary({'term': 'span'}) → span: one timed operation of a trace, with attributes and events"
)


def expected_tokens(question: str) -> list[str]:
    """The tokens the example's graph streams for ``question``, run here in-process."""
    from examples.streaming_langgraph.agent import build_agent
    from langchain_core.callbacks import BaseCallbackHandler

    tokens: list[str] = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    build_agent().invoke({"messages": [("human", question)]}, {"callbacks": [Tokens()]})
    return tokens


@pytest.fixture(scope="module")
def streaming_url() -> Any:
    with serve_example(EXAMPLE, "--delay", "0.06") as url:
        yield url


def test_page_shows_tokens_tool_calls_and_answer_as_they_arrive(streaming_url: str) -> None:
    expected = expected_tokens(QUESTION_A)
    assert "".join(expected).startswith("I will use the calculator.")
    with headless_chromium() as driver:
        open_page(driver, streaming_url)
        ask(driver, QUESTION_A)
        (final,), snapshots = watch([driver])
    assert final["status"] == "done"
    assert final["tokens"] == expected  # both model turns, every token, in order
    assert final["answer"] == ANSWER_A
    assert final["tools"] == [TOOL_A]
    states = [s for (s,) in snapshots]
    # the page filled in while the graph ran: part of the tokens and no answer yet ...
    assert any(0 < len(s["tokens"]) < len(expected) and not s["answer"] for s in states)
    # ... and the tool call showed up before the answer did
    assert any(s["tools"] and not s["answer"] for s in states)


def traces(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    by_trace: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    return dict(by_trace)


def check_request_trace(spans: list[ReceivedSpan], tool: str) -> None:
    """One request's spans: one root (the graph), every other span's parent in the same
    trace, the tool span under the agent's root, two streamed model turns."""
    by_id = {s.span_id: s for s in spans}
    (root,) = (s for s in spans if s.parent_span_id == "")
    assert root.span.name == "invoke_agent streaming-agent"
    assert all(s.parent_span_id in by_id for s in spans if s is not root)
    (tool_span,) = (s for s in spans if s.span.name.startswith("execute_tool"))
    assert tool_span.span.name == f"execute_tool {tool}"
    ancestors, at = [], tool_span
    while at.parent_span_id:
        at = by_id[at.parent_span_id]
        ancestors.append(at.span.name)
    assert ancestors == ["tools", "invoke_agent streaming-agent"]
    chats = [s for s in spans if s.span.name.startswith("chat ")]
    assert len(chats) == 2
    assert all(s.attributes.get("gen_ai.request.stream") is True for s in chats)


def test_two_browsers_at_once_each_see_only_their_own_request_and_trace() -> None:
    expected = {QUESTION_A: expected_tokens(QUESTION_A), QUESTION_B: expected_tokens(QUESTION_B)}
    assert expected[QUESTION_A] != expected[QUESTION_B]
    with (
        GrpcTraceReceiver() as receiver,
        serve_example(
            EXAMPLE,
            "--delay",
            "0.06",
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{receiver.endpoint}",
                "OTEL_SERVICE_NAME": "streaming-langgraph-test",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            },
        ) as url,
        headless_chromium() as browser_a,
        headless_chromium() as browser_b,
    ):
        open_page(browser_a, url)
        open_page(browser_b, url)
        ask(browser_a, QUESTION_A)
        ask(browser_b, QUESTION_B)
        (final_a, final_b), snapshots = watch([browser_a, browser_b])
        # each request is one trace: graph, 2 x (agent, call_model, sequence, prompt, chat,
        # should_continue), tools, the tool: 15 spans
        spans = receiver.wait_for(2 * 15, timeout=30)
    # both requests were streaming at the same time
    assert any(
        a["tokens"] and b["tokens"] and not a["answer"] and not b["answer"] for a, b in snapshots
    )
    assert any(a["tools"] and not a["answer"] for a, _ in snapshots)
    assert any(b["tools"] and not b["answer"] for _, b in snapshots)
    assert final_a["tokens"] == expected[QUESTION_A]
    assert final_b["tokens"] == expected[QUESTION_B]
    assert (final_a["answer"], final_b["answer"]) == (ANSWER_A, ANSWER_B)
    assert (final_a["tools"], final_b["tools"]) == ([TOOL_A], [TOOL_B])

    assert {s.resource["service.name"] for s in spans} == {"streaming-langgraph-test"}
    by_trace = traces(spans)
    assert len(by_trace) == 2
    tools = {}
    for trace_spans in by_trace.values():
        assert len(trace_spans) == 15
        tool = next(s for s in trace_spans if s.span.name.startswith("execute_tool"))
        tools[tool.span.name.removeprefix("execute_tool ")] = trace_spans
    assert set(tools) == {"calculator", "glossary"}
    for tool_name, trace_spans in tools.items():
        check_request_trace(trace_spans, tool_name)


def test_bad_messages_get_a_clear_error_and_the_connection_goes_on(streaming_url: str) -> None:
    ws_url = streaming_url.replace("http://", "ws://") + "/ws"
    with websockets.sync.client.connect(ws_url) as ws:
        for bad, problem in (
            ("not json", "send JSON"),
            (json.dumps({"question": "  "}), "non-empty"),
        ):
            ws.send(bad)
            reply = json.loads(ws.recv(timeout=10))
            assert reply["type"] == "done" and reply["ok"] is False
            assert problem in reply["error"]
        messages = converse(ws, "What is 5 + 6?")
    kinds = [m["type"] for m in messages]
    # the answer, then done, after everything the handler streamed
    assert kinds[-2:] == ["final_answer", "done"] and kinds.count("done") == 1
    assert messages[-1]["ok"] is True and messages[-1]["output"] == "The answer is 11"
    assert messages[-2]["answer"] == "The answer is 11"
    seqs = [m["seq"] for m in messages[:-2]]
    assert seqs == list(range(len(seqs)))  # nothing the handler sent was lost or reordered
    tool_end = next(m for m in messages if m["type"] == "end" and m["kind"] == "tool")
    assert tool_end["output"] == "11"


def converse(ws: Any, question: str) -> list[dict[str, Any]]:
    """Ask ``question`` on an open connection; the messages up to and including ``done``."""
    ws.send(json.dumps({"question": question}))
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1]["type"] != "done":
        messages.append(json.loads(ws.recv(timeout=30)))
    return messages


def test_a_failing_tool_fails_the_request_and_the_connection_goes_on(streaming_url: str) -> None:
    with websockets.sync.client.connect(streaming_url.replace("http://", "ws://") + "/ws") as ws:
        failed = converse(ws, "What is 7 / 0?")
        answered = converse(ws, "What is 2 + 3?")
    tool_error = next(m for m in failed if m["type"] == "error" and m["kind"] == "tool")
    assert (tool_error["name"], tool_error["error_type"]) == ("calculator", "ZeroDivisionError")
    graph_error = next(m for m in failed if m["type"] == "error" and m["name"] == "streaming-agent")
    assert graph_error["error_type"] == "ZeroDivisionError"
    assert "final_answer" not in [m["type"] for m in failed]
    assert failed[-1]["ok"] is False and "ZeroDivisionError" in failed[-1]["error"]
    assert answered[-1] == {"type": "done", "ok": True, "output": "The answer is 5"}


def test_docs_link_the_example() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = (line for line in readme.splitlines() if line.startswith("| `WebSocketHandler`"))
    link = f"examples/{EXAMPLE}/README.md"
    assert f"]({link})" in row
    examples_readme = (REPO_ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    assert f"]({EXAMPLE}/README.md)" in examples_readme
    command = f".venv/bin/python -m examples.{EXAMPLE}"
    assert command in examples_readme
    assert command in (REPO_ROOT / link).read_text(encoding="utf-8")
