"""``spanhook.testing``: one public reset of process-wide state, and the event recorder."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanhook
from spanhook import _state, testing
from spanhook.chains import LLMChain
from spanhook.llms import OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.runtime.workers import worker_for
from spanhook.tracing import configure as configure_mod
from spanhook.tracing.consumers import processor_for_exporter
from spanhook.tracing.provider import private_provider
from spanhook.tracing.secrets import is_secret_name
from spanhook.tracing.settings import TracingSettings, get_settings, set_settings
from spanhook.tracing.signature import accepts


def test_reset_forgets_settings_providers_tracers_and_configured_exporters() -> None:
    set_settings(TracingSettings(capture_content=True))
    private_provider()
    spanhook.configure(exporters=[InMemorySpanExporter()])
    trace.set_tracer_provider(TracerProvider())
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{a}"))
    chain.invoke({"a": "1 + 1 = "})  # fills the tracer and recording caches
    assert _state.STATE.tracer is not None and configure_mod._fanouts

    testing.reset()

    assert get_settings().capture_content is False  # read from the (clean) environment again
    state = _state.STATE
    assert (state.private_provider, state.tracer, state.recording) == (None, None, None)
    assert not configure_mod._fanouts
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    trace.set_tracer_provider(TracerProvider())  # allowed again after the reset


def test_reset_forgets_memos_exporter_processors_and_handler_mailboxes() -> None:
    def takes(run_manager: object = None) -> None: ...

    class Handler(testing.Recorder): ...

    handler, exporter = Handler(), InMemorySpanExporter()
    mailbox, processor = worker_for(handler), processor_for_exporter(exporter)
    assert accepts(takes, "run_manager") and is_secret_name("api_key")
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{a}"))
    chain.invoke({"a": "1 + 1 = "}, config={"callbacks": [handler]})
    state = _state.STATE
    memos = (state.accepts, state.secret_names, state.plans, state.consumer_kinds)
    assert all(memos) and worker_for(handler) is mailbox

    testing.reset()

    assert not any(memos)
    assert not state.exporter_processors and not state.workers
    assert worker_for(handler) is not mailbox  # a fresh mailbox for the same handler
    assert processor._closed  # every live export processor is shut down
    assert processor_for_exporter(exporter) is not processor


def test_reset_zeroes_the_export_counters() -> None:
    exporter = InMemorySpanExporter()
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{a}"))
    chain.invoke({"a": "1 + 1 = "}, config={"callbacks": [exporter]})
    assert spanhook.force_flush(timeout=5)
    assert spanhook.export_stats().exported_spans == 2 == len(exporter.get_finished_spans())

    testing.reset()

    assert spanhook.export_stats() == spanhook.ExportStats()


def test_the_recorder_records_every_event_of_a_run_with_its_arguments() -> None:
    rec = testing.Recorder()
    chain = LLMChain(llm=OfflineLLM(), prompt=PromptTemplate.from_template("{a} + {b} = "))
    chain.invoke({"a": 1, "b": 2}, callbacks=[rec])
    assert rec.names() == [
        "on_chain_start",
        "on_text",
        "on_llm_start",
        "on_llm_end",
        "on_chain_end",
    ]
    start = rec.of("on_chain_start")[0]
    assert start.args[1] == {"a": 1, "b": 2} and start.parent_run_id is None
    assert rec.of("on_llm_start")[0].parent_run_id == start.run_id
    assert len(rec.run_ids()) == 2
