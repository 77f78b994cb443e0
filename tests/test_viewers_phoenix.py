"""spanhook traces in a real Arize Phoenix: the demo exported over OTLP/HTTP and the viewer
app (chat model requesting a tool, the tool, a retriever, a failing tool) over OTLP/gRPC,
checked through Phoenix's own GraphQL API, then the trace pages opened in headless Chromium.

Phoenix comes from ``scripts/install-phoenix.sh`` and Chromium from
``scripts/install-chromium.sh`` (both run by ``scripts/test.sh``); without them these tests
skip locally and fail under CI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import viewers_app
from collector_harness import REPO_ROOT, _child_env
from phoenix_harness import (
    LOOPBACK_HEX,
    PhoenixServer,
    chromium,
    listening_addresses,
    phoenix_python,
    rendered_text,
    run_phoenix,
)
from spanhook.demo import DEFAULT_QUESTION

#: Phoenix's cold start (migrations) is slow on a busy machine: it counts in the first test.
pytestmark = pytest.mark.timeout(900)

DEMO_SPANS = 4  # agent, two completions, the calculator
APP_SPANS = 7  # chain (retriever, 2 chat turns, tool); a root chat model; a failing tool
TRACE_LINE = re.compile(r"^Trace: (?P<url>\S+/redirects/traces/(?P<trace_id>[0-9a-f]{32}))$", re.M)


@dataclass
class Exported:
    phoenix: PhoenixServer
    demo_project: str
    app_project: str
    session: str
    demo_link: str
    demo_trace_id: str
    app_trace_ids: dict[str, str]
    demo_spans: list[dict[str, Any]]
    app_spans: list[dict[str, Any]]


@pytest.fixture(scope="module")
def phoenix() -> Iterator[PhoenixServer]:
    with run_phoenix(phoenix_python()) as server:
        yield server


def _run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        args, env=_child_env(env), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def exported(phoenix: PhoenixServer) -> Exported:
    tag = uuid.uuid4().hex[:8]
    demo_project, app_project = f"spanhook-demo-{tag}", f"spanhook-app-{tag}"
    session = f"sess-{tag}"  # Phoenix session ids are global across projects
    # The demo over OTLP/HTTP (Phoenix serves it on its UI port), its project named by the
    # service name alone, its link printed for Phoenix.
    out = _run(
        [sys.executable, "-m", "spanhook.cli", "demo"],
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": demo_project,
            "SPANHOOK_TRACE_VIEWER_URL": phoenix.url + "/redirects/traces/{trace_id}",
        },
    )
    link = TRACE_LINE.search(out)
    assert link is not None, out
    # The app over OTLP/gRPC.
    ids = json.loads(
        _run(
            [sys.executable, str(REPO_ROOT / "tests" / "viewers_app.py"), session],
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{phoenix.grpc_port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_SERVICE_NAME": app_project,
            },
        ).strip()
    )
    return Exported(
        phoenix,
        demo_project,
        app_project,
        session,
        link["url"],
        link["trace_id"],
        ids,
        phoenix.wait_for_spans(demo_project, DEMO_SPANS),
        phoenix.wait_for_spans(app_project, APP_SPANS),
    )


def by_name(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    found = [s for s in spans if s["name"] == name]
    assert found, (name, [s["name"] for s in spans])
    return found


def one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (span,) = by_name(spans, name)
    return span


def test_phoenix_listens_on_loopback_only(phoenix: PhoenixServer) -> None:
    for port in (phoenix.http_port, phoenix.grpc_port):
        addresses = listening_addresses(port)
        assert addresses, f"nothing listens on {port}"
        assert addresses <= LOOPBACK_HEX, (port, addresses)


def test_the_service_name_routes_each_export_to_its_project(exported: Exported) -> None:
    assert len(exported.demo_spans) == DEMO_SPANS
    assert len(exported.app_spans) == APP_SPANS
    assert {s["context"]["traceId"] for s in exported.demo_spans} == {exported.demo_trace_id}
    assert {s["context"]["traceId"] for s in exported.app_spans} == set(
        exported.app_trace_ids.values()
    )


def test_no_unknown_span_and_input_output_on_every_kind(exported: Exported) -> None:
    spans = exported.demo_spans + exported.app_spans
    assert {s["spanKind"] for s in spans} == {"agent", "chain", "llm", "tool", "retriever"}
    for span in spans:
        kind, name = span["spanKind"], span["name"]
        if kind == "llm":  # Phoenix's chat view, from gen_ai.*.messages
            llm = span["attributes"]["llm"]
            assert llm["input_messages"] and llm["output_messages"], name
            continue
        assert span["input"] and span["input"]["value"], name
        if span["statusCode"] == "ERROR":
            assert span["output"] is None, name  # the failing tool: no result
        else:
            assert span["output"] and span["output"]["value"], name
    agent = one(exported.demo_spans, "invoke_agent demo-agent")
    assert agent["input"] == {"value": DEFAULT_QUESTION, "mimeType": "text"}
    assert agent["output"] == {"value": "84", "mimeType": "text"}
    chain = one(exported.app_spans, "ask-with-tools")
    assert chain["input"] == {"value": viewers_app.QUESTION, "mimeType": "text"}
    assert chain["output"] == {"value": viewers_app.ANSWER, "mimeType": "text"}
    tool = one(exported.app_spans, "execute_tool multiply")
    assert json.loads(tool["input"]["value"]) == {"a": 6, "b": 7}
    assert tool["output"]["value"] == "42"
    failing = one(exported.app_spans, "execute_tool weather")
    assert failing["statusCode"] == "ERROR" and failing["input"]["value"] == "Paris"
    # a root model span shows its messages in the trace list, as JSON
    lone = one(exported.app_spans, "chat spanhook-offline-1-chat")
    assert lone["input"]["mimeType"] == lone["output"]["mimeType"] == "json"
    assert viewers_app.GREETING in lone["input"]["value"]


def test_token_counts_and_their_roll_up(exported: Exported) -> None:
    turns = by_name(exported.app_spans, "chat fake-tool-caller")
    assert len(turns) == 2
    for turn in turns:
        assert (turn["tokenCountPrompt"], turn["tokenCountCompletion"]) == (31, 12)
        assert turn["tokenCountTotal"] == 43
    assert one(exported.app_spans, "ask-with-tools")["cumulativeTokenCountTotal"] == 86
    completions = by_name(exported.demo_spans, "text_completion spanhook-offline-1")
    assert all(c["tokenCountTotal"] > 0 for c in completions)
    agent = one(exported.demo_spans, "invoke_agent demo-agent")
    assert agent["cumulativeTokenCountTotal"] == sum(c["tokenCountTotal"] for c in completions)


def _messages(span: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [m["message"] for m in span["attributes"]["llm"][key]]


def test_the_tool_call_in_the_model_messages(exported: Exported) -> None:
    first, second = sorted(
        by_name(exported.app_spans, "chat fake-tool-caller"),
        key=lambda s: len(s["attributes"]["llm"]["input_messages"]),
    )
    (request,) = _messages(first, "output_messages")
    # The conventions' finish reason for a turn that calls tools (providers say "tool_calls").
    assert request["role"] == "assistant" and request["finish_reason"] == "tool_call"
    tool_message = _messages(second, "input_messages")[-1]
    assert (tool_message["role"], tool_message["content"]) == ("tool", "42")
    emitted = json.loads(first["attributes"]["gen_ai"]["output"]["messages"])
    assert any(p["type"] == "tool_call" for m in emitted for p in m["parts"])
    (call,) = request["tool_calls"]
    assert call["tool_call"]["id"] == viewers_app.CALL_ID
    assert call["tool_call"]["function"]["name"] == "multiply"
    assert json.loads(call["tool_call"]["function"]["arguments"]) == {"a": 6, "b": 7}
    assert tool_message["tool_call_id"] == viewers_app.CALL_ID


def test_retrieved_documents(exported: Exported) -> None:
    retriever = one(exported.app_spans, "retrieval facts")
    assert retriever["numDocuments"] == len(viewers_app.FACTS)
    docs = [d["document"] for d in retriever["attributes"]["retrieval"]["documents"]]
    assert [(d["id"], d["content"]) for d in docs] == [
        (f.id, f.page_content) for f in viewers_app.FACTS
    ]
    assert docs[0]["score"] == 0.9
    assert docs[1]["metadata"] == {"source": "tables.md"}


def test_session_user_and_metadata(exported: Exported) -> None:
    sessions = exported.phoenix.sessions(exported.app_project)
    assert [
        (s["sessionId"], s["numTraces"], s["firstInput"]["value"], s["lastOutput"]["value"])
        for s in sessions
    ] == [(exported.session, 1, viewers_app.QUESTION, viewers_app.ANSWER)]
    chain = one(exported.app_spans, "ask-with-tools")
    assert chain["userId"] == viewers_app.USER
    assert json.loads(chain["metadata"]) == {
        "session_id": exported.session,
        "user_id": viewers_app.USER,
        "tenant": "acme",
    }
    assert chain["attributes"]["tag"]["tags"] == ["request-tag", "viewers-app"]


def _wait_for_text(url: str, expected: list[str]) -> str:
    """The page's text once every expected string shows (the single-page app renders after
    its API calls; a slow machine gets longer budgets)."""
    text = ""
    for budget in (15_000, 30_000, 60_000):
        text = rendered_text(url, budget)
        if all(e in text for e in expected):
            return text
    missing = [e for e in expected if e not in text]
    raise AssertionError(f"{missing} not rendered on {url}; page text:\n{text[:3000]}")


def test_the_printed_link_opens_the_demo_trace_in_a_browser(exported: Exported) -> None:
    chromium()
    text = _wait_for_text(
        exported.demo_link,
        [
            "invoke_agent demo-agent",
            "text_completion spanhook-offline-1",
            "execute_tool calculator",
            DEFAULT_QUESTION,  # the root span's Input panel
        ],
    )
    assert "Not found" not in text
    assert re.search(r"^agent$", text, re.M)  # the span kind badge


def test_the_app_trace_renders_every_kind(exported: Exported) -> None:
    chromium()
    trace_id = exported.app_trace_ids["ask-with-tools"]
    _wait_for_text(
        f"{exported.phoenix.url}/redirects/traces/{trace_id}",
        [
            "ask-with-tools",
            "retrieval facts",
            "chat fake-tool-caller",
            "execute_tool multiply",
            viewers_app.QUESTION,
            viewers_app.ANSWER,
        ],
    )


def test_the_trace_list_and_the_documents_in_a_browser(exported: Exported) -> None:
    chromium()
    phoenix = exported.phoenix
    project = phoenix.project_id(exported.app_project)
    # the Traces table: each request's input, output and user, from its root span
    _wait_for_text(
        f"{phoenix.url}/projects/{project}/traces",
        ["ask-with-tools", viewers_app.QUESTION, viewers_app.ANSWER, viewers_app.USER],
    )
    # the retriever span: its query and one card per document
    retriever = one(exported.app_spans, "retrieval facts")["context"]["spanId"]
    _wait_for_text(
        f"{phoenix.url}/redirects/spans/{retriever}",
        [
            "retrieval facts",
            "document d1",
            "document d2",
            *(f.page_content for f in viewers_app.FACTS),
        ],
    )
