"""Fixtures and checks shared by the LangChain integration tests."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook.langchain
from lc_app import SEEN, LocalServer, ScriptedToolChatModel, make_tools


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture
def traced(memory_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """A global SDK provider exporting to memory, httpx instrumented, spanhook.langchain
    instrumented; all removed afterwards."""
    HTTPXClientInstrumentor().instrument(tracer_provider=trace.get_tracer_provider())
    spanhook.langchain.instrument()
    SEEN.clear()
    yield memory_exporter
    spanhook.langchain.uninstrument()
    HTTPXClientInstrumentor().uninstrument()
    SEEN.clear()


@pytest.fixture
def model(server: LocalServer) -> ScriptedToolChatModel:
    return ScriptedToolChatModel(server_url=server.url)


@pytest.fixture
def tools(server: LocalServer) -> list[Any]:
    return make_tools(server.url)


@pytest.fixture
def detach_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """OTel's "Failed to detach context" errors logged so far in the test (must stay none)."""
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")

    def found() -> list[str]:
        return [r.getMessage() for r in caplog.records if "detach" in r.getMessage().lower()]

    return found


@pytest.fixture
def stop_request_exporters() -> Iterator[None]:
    """Stop the background processors of the exporters a LangChain test passed in callbacks
    (their idle workers would otherwise outlive the test by seconds). Not autouse: this
    module is a plugin, and its autouse fixtures would apply to every test of the session."""
    from spanhook._state import STATE

    before = set(STATE.exporter_processors.keys())
    yield
    for key, proc in list(STATE.exporter_processors.items()):
        if key not in before:
            proc.shutdown(timeout_millis=1000)
