"""The attributes LLM viewers (Phoenix, Langfuse) read: span kinds, input/output with mime
types, retrieved documents, sessions/users/tags/metadata, the project resource attribute
and trace links. Checked on what a real OTLP receiver decoded."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

import spanhook
import viewers_app
from collector_harness import GrpcTraceReceiver, ReceivedSpan
from spanhook.demo import DEFAULT_QUESTION, build_agent, run_demo
from spanhook.retrievers import BaseRetriever
from spanhook.schema import Document
from spanhook.tools import Tool
from spanhook.tracing import viewers
from spanhook.tracing.viewers import io_value, trace_link

APP_SPANS = 7  # chain (retriever, 2 chat models, tool); a root chat model; a failing tool
DEMO_SPANS = 4  # agent, 2 LLM calls, the calculator tool


@pytest.fixture
def rx(monkeypatch: pytest.MonkeyPatch) -> Iterator[GrpcTraceReceiver]:
    for var in (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_RESOURCE_ATTRIBUTES",
        "SPANHOOK_CONTENT_MAX_LENGTH",
        viewers.TRACE_VIEWER_ENV,
        viewers.JAEGER_UI_ENV,
    ):
        monkeypatch.delenv(var, raising=False)
    with GrpcTraceReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{receiver.endpoint}")
        yield receiver
        spanhook.shutdown(timeout=2.0)


def exported(rx: GrpcTraceReceiver, n: int) -> list[ReceivedSpan]:
    assert spanhook.force_flush(timeout=10.0)
    spans = rx.wait_for(n)
    assert len(spans) == n, [s.span.name for s in spans]
    return spans


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    found = [s for s in spans if s.span.name == name]
    assert found, (name, [s.span.name for s in spans])
    return found


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    (span,) = named(spans, name)
    return span


def run_everything() -> None:
    viewers_app.run_app()
    assert "84" in build_agent(verbose=False).run(DEFAULT_QUESTION)


VIEWER_CONTENT_PREFIXES = ("input.", "output.", "retrieval.documents.")


def test_every_span_has_a_viewer_kind_and_no_content_unless_captured(
    rx: GrpcTraceReceiver,
) -> None:
    spanhook.configure(exporters="otlp")
    run_everything()
    spans = exported(rx, APP_SPANS + DEMO_SPANS)
    kinds = set()
    for s in spans:
        a = s.attributes
        assert a[viewers.SPAN_KIND] == viewers.SPAN_KINDS[a["spanhook.run.kind"]], s.span.name
        kinds.add(a[viewers.SPAN_KIND])
        # content stays off by default, the viewer mirrors too
        assert not [k for k in a if k.startswith(VIEWER_CONTENT_PREFIXES)], s.span.name
        # what the viewers derive from gen_ai.* themselves is never duplicated
        assert not [k for k in a if k.startswith(("llm.", "tool.", "embedding."))], s.span.name
    assert kinds == {"CHAIN", "AGENT", "LLM", "TOOL", "RETRIEVER"}
    # sessions, users, tags and metadata are not content: always there
    root = one(spans, "ask-with-tools").attributes
    assert root[viewers.SESSION_ID] == viewers_app.SESSION
    assert root[viewers.USER_ID] == viewers_app.USER


def test_inputs_outputs_and_documents_when_content_is_captured(rx: GrpcTraceReceiver) -> None:
    spanhook.configure(exporters="otlp", capture_content=True)
    viewers_app.run_app()
    spans = exported(rx, APP_SPANS)

    chain = one(spans, "ask-with-tools").attributes
    assert chain["input.value"] == viewers_app.QUESTION  # {"question": ...} unwrapped
    assert chain["input.mime_type"] == "text/plain"
    assert chain["output.value"] == viewers_app.ANSWER
    assert chain["output.mime_type"] == "text/plain"
    assert json.loads(chain["spanhook.input"]) == {"question": viewers_app.QUESTION}

    tool = one(spans, "execute_tool multiply").attributes
    assert json.loads(tool["input.value"]) == {"a": 6, "b": 7}
    assert tool["input.mime_type"] == "application/json"
    assert (tool["output.value"], tool["output.mime_type"]) == ("42", "text/plain")
    assert tool["gen_ai.tool.call.id"] == viewers_app.CALL_ID

    retriever = one(spans, "retrieval facts").attributes
    assert (retriever["input.value"], retriever["input.mime_type"]) == (
        viewers_app.QUESTION,
        "text/plain",
    )
    assert json.loads(retriever["output.value"]) == [d.page_content for d in viewers_app.FACTS]
    for i, doc in enumerate(viewers_app.FACTS):
        prefix = f"retrieval.documents.{i}.document."
        assert retriever[prefix + "content"] == doc.page_content
        assert retriever[prefix + "id"] == doc.id
        assert json.loads(retriever[prefix + "metadata"]) == doc.metadata
    assert retriever["retrieval.documents.0.document.score"] == 0.9
    assert "retrieval.documents.1.document.score" not in retriever  # none known

    # nested model spans keep the structured messages alone
    for model in named(spans, "chat fake-tool-caller"):
        a = model.attributes
        assert "gen_ai.input.messages" in a and "gen_ai.output.messages" in a
        assert not [k for k in a if k.startswith(("input.", "output."))]
    # a root model span shows the request in a trace list: its messages, as JSON
    lone = one(spans, "chat spanhook-offline-1-chat").attributes
    assert lone["input.value"] == lone["gen_ai.input.messages"]
    assert lone["output.value"] == lone["gen_ai.output.messages"]
    assert lone["input.mime_type"] == lone["output.mime_type"] == "application/json"
    assert viewers_app.GREETING in json.loads(lone["input.value"])[0]["parts"][0]["content"]

    failing = one(spans, "execute_tool weather")
    assert failing.attributes["input.value"] == "Paris"
    assert "output.value" not in failing.attributes
    assert failing.span.status.code == failing.span.status.STATUS_CODE_ERROR


def test_agent_spans_carry_the_question_and_the_answer(rx: GrpcTraceReceiver) -> None:
    spanhook.configure(exporters="otlp", capture_content=True)
    answer = build_agent(verbose=False).run(DEFAULT_QUESTION)
    spans = exported(rx, DEMO_SPANS)
    agent = one(spans, "invoke_agent demo-agent").attributes
    assert agent[viewers.SPAN_KIND] == "AGENT"
    assert (agent["input.value"], agent["output.value"]) == (DEFAULT_QUESTION, answer)
    for s in spans:
        if s.attributes["spanhook.run.kind"] in ("chain", "agent", "tool", "retriever"):
            assert "input.value" in s.attributes and "output.value" in s.attributes, s.span.name


def test_sessions_users_tags_and_metadata(rx: GrpcTraceReceiver) -> None:
    spanhook.configure(exporters="otlp")
    viewers_app.run_app(session="sess-42")
    tool = Tool(name="echo", func=lambda s: s, description="Echoes.")
    tool.run("x", metadata={"thread_id": 7, "api_key": "SECRET-KEY"}, tags=["t1"])
    tool.run("y", metadata={"conversation_id": "conv-1", "session_id": ""})
    tool.run("z")
    spans = exported(rx, APP_SPANS + 3)
    trace = [s for s in spans if s.trace_id == one(spans, "ask-with-tools").trace_id]
    assert len(trace) == 5
    for s in trace:  # request metadata and tags reach every nested span
        a = s.attributes
        assert a[viewers.SESSION_ID] == a[viewers.GEN_AI_CONVERSATION_ID] == "sess-42"
        assert a[viewers.USER_ID] == viewers_app.USER
        assert json.loads(a[viewers.METADATA]) == {
            "session_id": "sess-42",
            "user_id": viewers_app.USER,
            "tenant": "acme",
        }
        assert "request-tag" in a[viewers.TAG_TAGS]
    assert list(one(spans, "ask-with-tools").attributes[viewers.TAG_TAGS]) == [
        "request-tag",
        "viewers-app",
    ]
    first, second, third = (s.attributes for s in named(spans, "execute_tool echo"))
    assert first[viewers.SESSION_ID] == "7"
    assert json.loads(first[viewers.METADATA]) == {"thread_id": 7, "api_key": "***"}
    assert list(first[viewers.TAG_TAGS]) == ["t1"]
    assert second[viewers.SESSION_ID] == "conv-1"  # an empty session_id names no session
    assert viewers.USER_ID not in second
    assert not {viewers.SESSION_ID, viewers.METADATA, viewers.TAG_TAGS} & set(third)
    assert "SECRET-KEY" not in json.dumps([s.attributes for s in spans], default=str)


def test_the_redact_hook_governs_the_viewer_attributes(rx: GrpcTraceReceiver) -> None:
    seen: list[str] = []

    def hook(key: str, value: Any) -> Any:
        seen.append(key)
        if key in ("spanhook.input", "gen_ai.tool.call.result"):
            return "[hidden]"
        if key in ("spanhook.output", "spanhook.metadata.session_id"):
            return None
        if key == viewers.DOCUMENTS_METADATA:
            return [{"source": "[hidden]"} for _ in value]
        return value

    spanhook.configure(exporters="otlp", capture_content=True, redact=hook)
    viewers_app.run_app()
    spans = exported(rx, APP_SPANS)
    chain = one(spans, "ask-with-tools").attributes
    assert chain["input.value"] == "[hidden]"
    assert "output.value" not in chain and "spanhook.output" not in chain
    assert viewers.SESSION_ID not in chain and "session_id" not in json.loads(chain["metadata"])
    assert chain[viewers.USER_ID] == viewers_app.USER
    tool = one(spans, "execute_tool multiply").attributes
    assert tool["output.value"] == "[hidden]"
    retriever = one(spans, "retrieval facts").attributes
    assert retriever["input.value"] == "[hidden]"
    # the hook dropped the page contents: no document shows them
    assert not [k for k in retriever if k.endswith(".document.content")]
    assert retriever["retrieval.documents.0.document.id"] == "d1"
    assert json.loads(retriever["retrieval.documents.0.document.metadata"]) == {
        "source": "[hidden]"
    }
    text = json.dumps(retriever)
    for doc in viewers_app.FACTS:
        assert doc.page_content not in text
    assert "math.md" not in text
    assert "input.value" not in seen and "output.value" not in seen  # derived, never re-asked
    assert viewers.DOCUMENTS_METADATA in seen


def test_viewer_values_keep_the_size_limit(rx: GrpcTraceReceiver) -> None:
    spanhook.configure(exporters="otlp", capture_content=True, max_content_length=64)
    chain = viewers_app.AskWithTools(name="ask-with-tools")
    long_question = "What is 6 times 7? " + "x" * 500
    chain.invoke({"question": long_question})
    spans = exported(rx, 5)
    a = one(spans, "ask-with-tools").attributes
    assert len(a["spanhook.input"]) <= 64
    assert len(a["input.value"]) <= 64
    assert a["input.value"].endswith("...[truncated, 519 chars]")
    assert a["input.value"].startswith("What is 6 times 7?")
    docs = one(spans, "retrieval facts").attributes
    assert all(len(v) <= 64 for k, v in docs.items() if k.endswith((".content", ".value")))


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        ('{"question": "hi"}', ("hi", "text/plain")),
        ('{"n": 3}', ('{"n": 3}', "application/json")),
        ('{"a": "1", "b": "2"}', ('{"a": "1", "b": "2"}', "application/json")),
        ('["x", "y"]', ('["x", "y"]', "application/json")),
        ("plain words", ("plain words", "text/plain")),
        ("[not json", ("[not json", "text/plain")),
        ("42", ("42", "text/plain")),
        ("", ("", "text/plain")),
    ],
)
def test_io_value_forms(recorded: str, expected: tuple[str, str]) -> None:
    assert io_value(recorded) == expected


TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def test_trace_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(viewers.TRACE_VIEWER_ENV, raising=False)
    monkeypatch.delenv(viewers.JAEGER_UI_ENV, raising=False)
    assert trace_link(TRACE_ID) == f"http://localhost:16686/trace/{TRACE_ID}"
    monkeypatch.setenv(viewers.JAEGER_UI_ENV, "http://jaeger.local:16686/")
    assert trace_link(TRACE_ID) == f"http://jaeger.local:16686/trace/{TRACE_ID}"
    monkeypatch.setenv(viewers.TRACE_VIEWER_ENV, viewers.PHOENIX_TEMPLATE)
    assert trace_link(TRACE_ID) == f"http://127.0.0.1:6006/redirects/traces/{TRACE_ID}"
    assert trace_link(TRACE_ID, "http://h:1/t/{trace_id}?x=1") == f"http://h:1/t/{TRACE_ID}?x=1"
    assert trace_link(TRACE_ID, "http://h:16686") == f"http://h:16686/trace/{TRACE_ID}"


def test_demo_prints_the_link_of_the_configured_viewer(
    rx: GrpcTraceReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(viewers.TRACE_VIEWER_ENV, viewers.PHOENIX_TEMPLATE)
    out = io.StringIO()
    assert run_demo(export="otlp", out=out) == 0
    spans = rx.wait_for(DEMO_SPANS)
    root = one(spans, "invoke_agent demo-agent")
    assert f"Trace: http://127.0.0.1:6006/redirects/traces/{root.trace_id}\n" in out.getvalue()


def test_the_service_name_names_the_phoenix_project(
    rx: GrpcTraceReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    spanhook.configure(exporters="otlp", service_name="billing-bot")
    viewers_app.run_app()
    spans = exported(rx, APP_SPANS)
    assert {s.resource.get(viewers.PROJECT_NAME) for s in spans} == {"billing-bot"}
    assert {s.resource.get("service.name") for s in spans} == {"billing-bot"}


@pytest.mark.parametrize(
    ("env", "service", "project"),
    [
        ({"OTEL_RESOURCE_ATTRIBUTES": "openinference.project.name=chosen"}, "svc", "chosen"),
        ({"OTEL_SERVICE_NAME": "from-env"}, None, "from-env"),
        ({}, None, None),  # the SDK's unknown_service: Phoenix's default project
    ],
)
def test_project_name_sources(
    rx: GrpcTraceReceiver,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    service: str | None,
    project: str | None,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    spanhook.configure(exporters="otlp", service_name=service)
    Tool(name="echo", func=lambda s: s, description="Echoes.").run("x")
    (span,) = exported(rx, 1)
    assert span.resource.get(viewers.PROJECT_NAME) == project


def test_async_runs_get_the_same_viewer_attributes(rx: GrpcTraceReceiver) -> None:
    spanhook.configure(exporters="otlp", capture_content=True)

    async def main() -> None:
        chain = viewers_app.AskWithTools(name="ask-with-tools")
        retriever = viewers_app.FactsRetriever(name="facts")
        tool = Tool(name="echo", func=lambda s: s, description="Echoes.")
        meta = {"session_id": "sess-async", "user_id": "u-async"}
        await asyncio.gather(
            chain.ainvoke({"question": viewers_app.QUESTION}, metadata=meta),
            retriever.ainvoke("async query", metadata=meta),
            tool.arun("async input", metadata=meta),
        )

    asyncio.run(main())
    spans = exported(rx, 7)
    for s in spans:
        a = s.attributes
        assert a[viewers.SPAN_KIND] == viewers.SPAN_KINDS[a["spanhook.run.kind"]]
        assert (a[viewers.SESSION_ID], a[viewers.USER_ID]) == ("sess-async", "u-async")
    chain = one(spans, "ask-with-tools").attributes
    assert (chain["input.value"], chain["output.value"]) == (
        viewers_app.QUESTION,
        viewers_app.ANSWER,
    )
    retrievals = named(spans, "retrieval facts")
    assert {r.attributes["input.value"] for r in retrievals} == {
        viewers_app.QUESTION,
        "async query",
    }
    for r in retrievals:
        assert r.attributes["retrieval.documents.1.document.id"] == "d2"
    echo = one(spans, "execute_tool echo").attributes
    assert (echo["input.value"], echo["output.value"]) == ("async input", "async input")


class ManyDocs(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(f"doc {i}", {"rank": i}, f"id-{i}") for i in range(25)]


def test_documents_are_bounded_and_a_failing_hook_hides_their_metadata(
    rx: GrpcTraceReceiver,
) -> None:
    def hook(key: str, value: Any) -> Any:
        if key == viewers.DOCUMENTS_METADATA:
            raise RuntimeError("hook bug")
        return value

    spanhook.configure(exporters="otlp", capture_content=True, redact=hook)
    assert len(ManyDocs(name="many").invoke("q")) == 25  # the caller gets every document
    (span,) = exported(rx, 1)
    a = span.attributes
    ids = sorted(int(k.split(".")[2]) for k in a if k.endswith(".document.id"))
    assert ids == list(range(viewers.MAX_DOCUMENTS))
    assert a["retrieval.documents.19.document.content"] == "doc 19"
    assert not [k for k in a if k.endswith(".document.metadata")]  # failed closed
    assert len(a) < 128  # within the SDK's default attribute limit
