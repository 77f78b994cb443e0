"""OTel span exporters and processors passed in langchain-core callbacks.

langchain-core treats every entry of ``callbacks`` as a callback handler (an exporter makes
it raise ``AttributeError: 'raise_error'``). While instrumented, each OTel consumer in a
callback manager is replaced by a :class:`ConsumerHandler`: a handler langchain-core scopes
like any other (request callbacks are inherited by nested runs, a model's or tool's
constructor callbacks are local), which hands its processor to the run it is told about.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from spanhook.langchain import _runtime as rt
from spanhook.langchain.tracer import TRACER


def is_otel_consumer(obj: object) -> bool:
    return isinstance(obj, (SpanProcessor, SpanExporter))


def processor_of(consumer: object) -> SpanProcessor:
    """The processor behind ``consumer`` (an exporter gets spanhook's background one)."""
    return rt.classify([consumer], "langchain callbacks").processors[0]


class ConsumerHandler(BaseCallbackHandler):
    """Stands for one OTel consumer in a langchain-core callback manager."""

    run_inline = True
    raise_error = False

    def __init__(self, consumer: object, inherited: bool) -> None:
        self.consumer = consumer
        self.processor = processor_of(consumer)
        self.inherited = inherited

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConsumerHandler) and other.consumer is self.consumer

    def __hash__(self) -> int:
        return id(self.consumer)

    def _started(self, run_id: uuid.UUID) -> None:
        TRACER.add_pending(run_id, self.processor, self.inherited)

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: uuid.UUID, **kw: Any) -> None:
        self._started(run_id)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: uuid.UUID, **kw: Any) -> None:
        self._started(run_id)

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: uuid.UUID, **kw: Any
    ) -> None:
        self._started(run_id)

    def on_tool_start(
        self, serialized: Any, input_str: str, *, run_id: uuid.UUID, **kw: Any
    ) -> None:
        self._started(run_id)

    def on_retriever_start(
        self, serialized: Any, query: str, *, run_id: uuid.UUID, **kw: Any
    ) -> None:
        self._started(run_id)

    def __repr__(self) -> str:
        return f"<ConsumerHandler {self.consumer!r}>"
