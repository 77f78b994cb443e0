"""The examples, used as a person would: each runs as the command its README gives (a child
process), offline by default and against a real OpenAI-compatible HTTP server with
``--openai-base-url``; the streaming page runs in a real headless Chromium over a real
WebSocket; telemetry goes through the real Collector to real receivers on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from typing import Any

import pytest
import websockets.sync.client

from browser_harness import ask, headless_chromium, open_page, watch
from collector_harness import (
    REPO_ROOT,
    GrpcTraceReceiver,
    collector_binary,
    jaeger_binary,
    jaeger_traces,
    require_binary,
    run_collector,
    run_jaeger,
    wait_until,
)
from example_runner import run_example, serve_example
from helpers import Recorder
from metrics_harness import HttpMetricsReceiver, ReceivedMetric
from openai_server import OpenAIServer, Text

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the examples package, for the expected token streams

HEX32, HEX16 = re.compile(r"^[0-9a-f]{32}$"), re.compile(r"^[0-9a-f]{16}$")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------ logging requests


def test_logging_example_logs_both_requests_with_trace_ids() -> None:
    done = run_example("logging_requests")
    records = json_lines(done.stdout)  # stdout holds nothing but the JSON lines
    assert [r["event"] for r in records] == ["chain_start", "chain_end"] * 2
    # the constructor logger sees the chain's runs only, not the nested model run
    assert {(r["run_kind"], r["run_name"]) for r in records} == {("chain", "adder")}
    first, second = records[:2], records[2:]
    for start, end in (first, second):
        assert start["run_id"] == end["run_id"]
        assert start["trace_id"] == end["trace_id"] and HEX32.match(start["trace_id"])
        assert start["span_id"] == end["span_id"] and HEX16.match(start["span_id"])
        assert end["duration_ms"] >= 0
    assert first[0]["trace_id"] != second[0]["trace_id"]
    assert "3" in json.dumps(first[1]) and "41" in json.dumps(second[1])  # outputs, opted in
    # the request callback added a transcript for request 2 only
    assert done.stderr.count("Prompt after formatting:") == 1
    assert "1 + 40 =" in done.stderr and "1 + 2 =" not in done.stderr
    assert "request 1 answered '3'" in done.stderr
    assert "request 2 answered '41'" in done.stderr


def test_logging_example_writes_a_log_file(tmp_path: Any) -> None:
    log = tmp_path / "requests.jsonl"
    done = run_example("logging_requests", "--log-file", str(log))
    assert done.stdout == ""
    assert len(json_lines(log.read_text(encoding="utf-8"))) == 4


def test_logging_example_against_an_openai_compatible_server() -> None:
    with OpenAIServer() as server:
        server.script(Text("3"), Text("41"))
        done = run_example(
            "logging_requests", "--openai-base-url", server.url, "--model", "test-model"
        )
    assert "request 1 answered '3'" in done.stderr
    assert "request 2 answered '41'" in done.stderr
    assert [r.body["model"] for r in server.requests] == ["test-model"] * 2
    assert len(json_lines(done.stdout)) == 4


@pytest.mark.collector
def test_a_log_line_finds_its_trace_in_jaeger() -> None:
    collector_bin = require_binary(collector_binary(), "collector")
    jaeger_bin = require_binary(jaeger_binary(), "jaeger")
    service = f"logging-example-{uuid.uuid4().hex[:8]}"
    with (
        run_jaeger(binary=jaeger_bin) as jaeger,
        run_collector(jaeger_endpoint=jaeger.otlp_grpc_endpoint, binary=collector_bin) as col,
    ):
        done = run_example(
            "logging_requests",
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{col.grpc_endpoint}",
                "OTEL_SERVICE_NAME": service,
            },
        )
        for record in json_lines(done.stdout)[::2]:

            def trace_of(record: dict[str, Any] = record) -> dict[str, Any] | None:
                for trace in jaeger_traces(jaeger.query_port, service):
                    if trace["traceID"] == record["trace_id"] and len(trace["spans"]) == 2:
                        return trace
                return None

            try:
                trace = wait_until(trace_of, timeout=30, interval=0.25, message="trace in Jaeger")
            except TimeoutError:
                pytest.fail(f"no trace {record['trace_id']}; collector:\n{col.output()}")
            spans = {s["spanID"]: s for s in trace["spans"]}
            chain = spans[record["span_id"]]  # the log line's span is in the trace
            assert chain["operationName"] == "adder"
            (child,) = (s for s in spans.values() if s is not chain)
            assert child["references"][0]["spanID"] == record["span_id"]


# ------------------------------------------------------------------ monitoring


def metric_points(console: str) -> list[dict[str, Any]]:
    """(name, unit, attributes) of every data point in the console exporter's JSON output."""
    decoder, at, points = json.JSONDecoder(), console.index('{\n    "resource_metrics"'), []
    while at < len(console):
        if console[at].isspace():
            at += 1
            continue
        batch, at = decoder.raw_decode(console, at)
        for rm in batch["resource_metrics"]:
            for sm in rm["scope_metrics"]:
                for metric in sm["metrics"]:
                    for point in metric["data"]["data_points"]:
                        points.append({"name": metric["name"], "unit": metric["unit"], **point})
    return points


def test_monitoring_example_prints_the_summary_and_metrics() -> None:
    done = run_example("monitoring", "--repeat", "2")
    out = done.stdout
    assert re.search(r"What is 12 \* \(3 \+ 4\)\?\s+84", out)
    assert re.search(r"What is 7 / 0\?\s+failed: ZeroDivisionError", out)
    table = out[out.index("per run kind:") :].splitlines()
    assert table[1].split() == [
        "kind", "count", "errors", "p50", "ms", "p95", "ms", "peak", "alloc", "KiB", "max", "RSS", "MiB"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in table[2:5]}
    assert set(rows) == {"agent", "llm", "tool"}
    assert rows["agent"][:2] == ["12", "2"]  # 6 questions twice, the division by zero fails
    assert rows["tool"][:2] == ["12", "2"]
    for cells in rows.values():
        p50, p95, peak = float(cells[2]), float(cells[3]), float(cells[4])
        assert 0 < p50 <= p95 and peak > 0

    points = metric_points(out)
    names = {(p["name"], p["unit"]) for p in points}
    assert names == {
        ("gen_ai.client.operation.duration", "s"),
        ("gen_ai.client.token.usage", "{token}"),
        ("spanhook.run.duration", "s"),
    }
    ops = {
        p["attributes"]["gen_ai.operation.name"]: p
        for p in points
        if p["name"] == "gen_ai.client.operation.duration" and "error.type" not in p["attributes"]
    }
    assert ops["invoke_agent"]["count"] == 10 and ops["execute_tool"]["count"] == 10
    assert ops["text_completion"]["attributes"]["gen_ai.request.model"] == "spanhook-offline-1"


def check_collector_metrics(points: list[ReceivedMetric], service: str) -> None:
    mine = [p for p in points if p.resource.get("service.name") == service]
    assert {(p.name, p.unit, p.kind) for p in mine} == {
        ("gen_ai.client.operation.duration", "s", "histogram"),
        ("gen_ai.client.token.usage", "{token}", "histogram"),
        ("spanhook.run.duration", "s", "histogram"),
    }
    durations = [p for p in mine if p.name == "gen_ai.client.operation.duration"]
    by_op = {
        (p.attributes["gen_ai.operation.name"], p.attributes.get("error.type")) for p in durations
    }
    assert by_op == {
        ("text_completion", None),
        ("execute_tool", None),
        ("execute_tool", "ZeroDivisionError"),
        ("invoke_agent", None),
        ("invoke_agent", "ZeroDivisionError"),
    }
    model = next(p for p in durations if p.attributes["gen_ai.operation.name"] == "text_completion")
    assert model.attributes["gen_ai.provider.name"] == "spanhook"
    assert model.attributes["gen_ai.request.model"] == "spanhook-offline-1"
    assert model.point.count == 11  # 6 questions, 2 model calls each, 1 stops at the tool error
    assert list(model.point.explicit_bounds)[:3] == [0.01, 0.02, 0.04]
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in mine if p.name == "gen_ai.client.token.usage"
    }
    assert set(tokens) == {"input", "output"}
    for p in tokens.values():
        assert p.point.count == 11 and p.point.sum > 0
        assert p.attributes["gen_ai.operation.name"] == "text_completion"


def test_monitoring_example_against_an_openai_compatible_server() -> None:
    with OpenAIServer() as server:
        # six questions asked concurrently: every reply answers at once, whichever comes first
        server.script(*[Text("I now know the final answer.\nFinal Answer: 42")] * 6)
        done = run_example(
            "monitoring", "--repeat", "1", "--openai-base-url", server.url, "--model", "test-model"
        )
    assert [r.body["model"] for r in server.requests] == ["test-model"] * 6
    assert done.stdout.count("42") >= 6
    points = metric_points(done.stdout)
    chat = [
        p
        for p in points
        if p["name"] == "gen_ai.client.operation.duration"
        and p["attributes"]["gen_ai.operation.name"] == "chat"
    ]
    assert sum(p["count"] for p in chat) == 6
    assert {p["attributes"]["gen_ai.request.model"] for p in chat} == {"test-model"}
    assert {p["attributes"]["gen_ai.provider.name"] for p in chat} == {"openai"}
    usage = {
        p["attributes"]["gen_ai.token.type"]: p
        for p in points
        if p["name"] == "gen_ai.client.token.usage"
    }
    assert usage["input"]["sum"] == 6 * 7  # the server reports 7 prompt tokens a call


@pytest.mark.collector
def test_monitoring_example_metrics_and_traces_through_the_collector() -> None:
    collector_bin = require_binary(collector_binary(), "collector")
    service = f"monitoring-example-{uuid.uuid4().hex[:8]}"
    with (
        HttpMetricsReceiver() as metrics_backend,
        GrpcTraceReceiver() as traces_backend,
        run_collector(
            binary=collector_bin,
            jaeger_endpoint=traces_backend.endpoint,
            metrics_endpoint=metrics_backend.endpoint,
        ) as collector,
    ):
        run_example(
            "monitoring",
            "--repeat",
            "1",
            "--no-console-metrics",
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{collector.grpc_endpoint}",
                "OTEL_SERVICE_NAME": service,
            },
        )

        def complete(points: list[ReceivedMetric]) -> bool:
            return {p.name for p in points if p.resource.get("service.name") == service} >= {
                "gen_ai.client.operation.duration",
                "gen_ai.client.token.usage",
            }

        try:
            points = metrics_backend.wait_for(complete, timeout=30)
        except TimeoutError:
            pytest.fail(f"metrics did not arrive; collector:\n{collector.output()}")
        check_collector_metrics(points, service)
        # the same Collector carried the traces: 6 agent runs, each a root span
        spans = traces_backend.wait_for(6 + 11 + 6, timeout=30)
        roots = [
            s for s in spans if s.parent_span_id == "" and s.resource["service.name"] == service
        ]
        assert len(roots) == 6


# ------------------------------------------------------------------ streaming to a browser


def expected_tokens(question: str) -> list[str]:
    """The tokens the example's agent streams for ``question``, run here in-process."""
    from examples.streaming.app import build_agent

    args = argparse.Namespace(openai_base_url=None, delay=0.0)
    recorder = Recorder()
    build_agent(args).run(question, callbacks=[recorder])
    return [e.args[0] if e.args else e.kwargs["token"] for e in recorder.of("on_llm_new_token")]


QUESTION_A, ANSWER_A = "What is 12 * (3 + 4)?", "84"
QUESTION_B, ANSWER_B = "What is 2 ** 10?", "1024"


@pytest.fixture(scope="module")
def streaming_url() -> Any:
    with serve_example("streaming", "--delay", "0.06") as url:
        yield url


def test_page_shows_tokens_tool_calls_and_answer_as_they_arrive(streaming_url: str) -> None:
    expected = expected_tokens(QUESTION_A)
    with headless_chromium() as driver:
        open_page(driver, streaming_url)
        ask(driver, QUESTION_A)
        (final,), snapshots = watch([driver])
    assert final["status"] == "done"
    assert final["tokens"] == expected  # every token, in order, none from elsewhere
    assert final["answer"] == ANSWER_A
    assert final["tools"] == ["calculator(12 * (3 + 4)) → 84"]
    states = [s for (s,) in snapshots]
    # the page filled in while the agent ran: part of the tokens and no answer yet ...
    assert any(0 < len(s["tokens"]) < len(expected) and not s["answer"] for s in states)
    # ... and the tool call showed up before the answer did
    assert any(s["tools"] and not s["answer"] for s in states)


def test_two_browsers_at_once_each_see_only_their_own_request(streaming_url: str) -> None:
    expected = {QUESTION_A: expected_tokens(QUESTION_A), QUESTION_B: expected_tokens(QUESTION_B)}
    assert expected[QUESTION_A] != expected[QUESTION_B]
    with headless_chromium() as browser_a, headless_chromium() as browser_b:
        open_page(browser_a, streaming_url)
        open_page(browser_b, streaming_url)
        ask(browser_a, QUESTION_A)
        ask(browser_b, QUESTION_B)
        (final_a, final_b), snapshots = watch([browser_a, browser_b])
    # both requests were streaming at the same time
    assert any(
        a["tokens"] and b["tokens"] and not a["answer"] and not b["answer"] for a, b in snapshots
    )
    assert final_a["tokens"] == expected[QUESTION_A]
    assert final_b["tokens"] == expected[QUESTION_B]
    assert (final_a["answer"], final_b["answer"]) == (ANSWER_A, ANSWER_B)
    assert final_a["tools"] == ["calculator(12 * (3 + 4)) → 84"]
    assert final_b["tools"] == ["calculator(2 ** 10) → 1024"]


def test_bad_messages_get_a_clear_error_and_the_connection_goes_on(streaming_url: str) -> None:
    ws_url = streaming_url.replace("http://", "ws://") + "/ws"
    with websockets.sync.client.connect(ws_url) as ws:
        for bad, problem in (
            ("not json", "send JSON"),
            (json.dumps({"question": ""}), "non-empty"),
            (json.dumps({"question": "x" * 5000}), "longer than"),
        ):
            ws.send(bad)
            reply = json.loads(ws.recv(timeout=10))
            assert reply["type"] == "done" and reply["ok"] is False
            assert problem in reply["error"]
        ws.send(json.dumps({"question": "What is 5 + 6?"}))
        messages = []
        while not messages or messages[-1]["type"] != "done":
            messages.append(json.loads(ws.recv(timeout=30)))
    assert messages[-1]["ok"] is True and messages[-1]["output"] == "11"


def test_streaming_example_against_an_openai_compatible_server() -> None:
    with OpenAIServer() as server:
        server.script(
            Text("I will use the calculator.\nAction: calculator\nAction Input: 6 * 7"),
            Text("I now know the final answer.\nFinal Answer: 42"),
        )
        with (
            serve_example("streaming", "--openai-base-url", server.url) as url,
            websockets.sync.client.connect(url.replace("http://", "ws://") + "/ws") as ws,
        ):
            ws.send(json.dumps({"question": "What is 6 * 7?"}))
            messages = []
            while not messages or messages[-1]["type"] != "done":
                messages.append(json.loads(ws.recv(timeout=30)))
    tokens = "".join(m["token"] for m in messages if m["type"] == "token")
    assert tokens.startswith("I will use the calculator.") and tokens.endswith("Final Answer: 42")
    tool_end = next(m for m in messages if m["type"] == "end" and m["kind"] == "tool")
    assert tool_end["output"] == "42"
    assert messages[-1] == {**messages[-1], "type": "done", "ok": True, "output": "42"}
    assert all(r.body.get("stream") is True for r in server.requests)


# ------------------------------------------------------------------ the docs point at them


@pytest.mark.parametrize(
    ("handler", "example"),
    [
        ("RequestLogger", "logging_requests"),
        ("WebSocketHandler", "streaming"),
        ("MonitorHandler", "monitoring"),
    ],
)
def test_readme_handler_rows_link_the_examples(handler: str, example: str) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = (line for line in readme.splitlines() if line.startswith(f"| `{handler}`"))
    link = f"examples/{example}/README.md"
    assert f"]({link})" in row
    page = (REPO_ROOT / link).read_text(encoding="utf-8")
    # the one command the page gives is the one these tests run
    assert f".venv/bin/python -m examples.{example}" in page
