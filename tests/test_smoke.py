from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import Recorder
from spanhook.chains import LLMChain
from spanhook.llms import FakeListLLM
from spanhook.prompts import PromptTemplate


def test_llm_chain_run_is_two_spans_and_events(memory_exporter: InMemorySpanExporter) -> None:
    rec = Recorder()
    chain = LLMChain(
        llm=FakeListLLM(responses=["3"]), prompt=PromptTemplate.from_template("1 + {n} = ")
    )
    assert chain.run(n=2, callbacks=[rec]) == "3"
    assert rec.names() == [
        "on_chain_start",
        "on_text",
        "on_llm_start",
        "on_llm_end",
        "on_chain_end",
    ]
    spans = {s.name: s for s in memory_exporter.get_finished_spans()}
    assert set(spans) == {"LLMChain", "text_completion fake-list"}
    assert spans["text_completion fake-list"].parent.span_id == spans["LLMChain"].context.span_id
