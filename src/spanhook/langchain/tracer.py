"""``SpanhookTracer``: the langchain-core callback handler that turns each langchain-core run
into a spanhook run (one span, langchain-core's ``run_id``, its parent run's span as parent).

It only starts and ends spans: making a run's span current while its body executes is done
inside the body's own context (see :mod:`spanhook.langchain.hooks`), never from a callback
into the caller's context. The handler keeps one map entry per open run, removed when the
run ends or fails (langchain-core ends every run, on every exit path).
"""

from __future__ import annotations

import contextvars
import uuid
import weakref
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.globals import get_verbose
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind

from spanhook.events import IN_RUN_EVENTS
from spanhook.langchain import _runtime as rt
from spanhook.langchain import naming
from spanhook.langchain.naming import STEP_TAGS, TRACING_KEYS
from spanhook.tracing import attributes as attr
from spanhook.tracing.viewers import record_documents


class StreamSlot:
    """Set by a stream driver around each step of a stream it drives. The stream's own run
    is the run open in it: the first run started in a step that has not ended within that
    step (runs that feed the stream its input start and end before it). ``attach``: make
    that run current for the rest of the step (model streams, whose bodies have no context
    of their own). ``children``: the streams created inside its steps."""

    __slots__ = ("attach", "children", "run")

    def __init__(self, attach: bool) -> None:
        self.run: rt.Run | None = None
        self.attach = attach
        self.children: list[weakref.ref[Any]] = []


#: The stream slot of the stream step being driven in this context, if any.
STREAM_SLOT: contextvars.ContextVar[StreamSlot | None] = contextvars.ContextVar(
    "spanhook_langchain_stream_slot", default=None
)
_PENDING_LIMIT = 100_000
_NO_ATTRIBUTES: dict[str, Any] = {}  # (never changed)
_MODEL_KINDS = frozenset(("llm", "chat_model"))


class SpanhookTracer(BaseCallbackHandler):
    """One span per langchain-core run."""

    run_inline = True
    raise_error = False

    def __init__(self) -> None:
        #: open runs by langchain-core run id
        self.runs: dict[uuid.UUID, rt.Run] = {}
        #: scoped processors handed over by OTel consumers in a run's callbacks, by run id,
        #: until the run starts: (own, inherited)
        self.pending: dict[uuid.UUID, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        #: runs whose stream the consumer closed before its end
        self.closed_early: set[uuid.UUID] = set()
        #: LLM provider instrumentations make no second span inside a model run
        self.suppress_provider_spans = True
        #: print the span tree of every request
        self.verbose = False

    # -- scoped OTel consumers ------------------------------------------------------------
    def add_pending(self, run_id: uuid.UUID, processor: SpanProcessor, inherited: bool) -> None:
        own, inh = self.pending.get(run_id, ((), ()))
        if inherited:
            inh = (*inh, processor)
        else:
            own = (*own, processor)
        if len(self.pending) > _PENDING_LIMIT:  # starts that never reached this handler
            self.pending.clear()
        self.pending[run_id] = (own, inh)

    # -- start ----------------------------------------------------------------------------
    def _open(
        self,
        kind: str,
        name: str,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None,
        span_name: str,
        span_kind: SpanKind,
        attributes: dict[str, Any],
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
    ) -> rt.Run:
        parent = self.runs.get(parent_run_id) if parent_run_id is not None else None
        own: tuple[Any, ...] = ()
        inherited: tuple[Any, ...] = ()
        if self.pending:
            found = self.pending.pop(run_id, None)
            if found is not None:
                own, inherited = found
        verbose = parent is None and (self.verbose or get_verbose())
        if metadata and not TRACING_KEYS.isdisjoint(metadata):
            metadata = {k: v for k, v in metadata.items() if k not in TRACING_KEYS}
        if tags:
            # positional tags langchain-core and LangGraph add to every step ("seq:step:2")
            if len(tags) == 1:  # (bench_langchain app chain: a step's one tag, no list)
                tags = None if tags[0].startswith(STEP_TAGS) else tags
            else:
                tags = [t for t in tags if not t.startswith(STEP_TAGS)]
        run = rt.open_run(
            kind,
            name,
            run_id,
            parent,
            span_name,
            span_kind,
            attributes,
            tags,
            metadata,
            own,
            inherited,
            verbose,
        )
        if kind in _MODEL_KINDS and self.suppress_provider_spans:
            rt.suppress_provider_spans(run)
        self.runs[run_id] = run
        slot = STREAM_SLOT.get()
        if slot is not None and slot.run is None:
            slot.run = run
            if slot.attach:  # the stream driver owns this context (or resets it after the step)
                rt.attach(rt.run_context(run))
        return run

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        name = name or naming.run_name(serialized, None)  # (bench_langchain app chain)
        if metadata and naming.is_graph_run(metadata):
            kind, span_name = "agent", f"invoke_agent {name}"
            attributes = {attr.GEN_AI_OPERATION_NAME: "invoke_agent", attr.GEN_AI_AGENT_NAME: name}
        else:
            kind, span_name, attributes = "chain", name, _NO_ATTRIBUTES
        run = self._open(
            kind,
            name,
            run_id,
            parent_run_id,
            span_name,
            SpanKind.INTERNAL,
            attributes,
            tags,
            metadata,
        )
        if inputs and rt.content_capture_enabled():
            run.record_content(attr.INPUT, inputs)

    def _model_start(
        self,
        kind: str,
        operation: str,
        serialized: dict[str, Any] | None,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> rt.Run:
        params = kwargs.get("invocation_params")
        model = naming.model_name(serialized, params, metadata)
        return self._open(
            kind,
            naming.run_name(serialized, kwargs.get("name")),
            run_id,
            parent_run_id,
            f"{operation} {model}",
            SpanKind.CLIENT,
            naming.model_attributes(operation, model, params, metadata),
            tags,
            metadata,
        )

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._model_start(
            "chat_model", "chat", serialized, run_id, parent_run_id, tags, metadata, kwargs
        )
        if rt.content_capture_enabled():
            run.record_content(attr.GEN_AI_INPUT_MESSAGES, naming.input_messages(messages))

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._model_start(
            "llm", "text_completion", serialized, run_id, parent_run_id, tags, metadata, kwargs
        )
        if rt.content_capture_enabled():
            run.record_content(attr.GEN_AI_INPUT_MESSAGES, naming.prompt_messages(prompts))

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = naming.run_name(serialized, kwargs.get("name"))
        run = self._open(
            "tool",
            name,
            run_id,
            parent_run_id,
            f"execute_tool {name}",
            SpanKind.INTERNAL,
            naming.tool_attributes(name, serialized, kwargs.get("tool_call_id")),
            tags,
            metadata,
        )
        if rt.content_capture_enabled():
            run.record_content(attr.GEN_AI_TOOL_CALL_ARGUMENTS, inputs or input_str)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = naming.run_name(serialized, kwargs.get("name"))
        run = self._open(
            "retriever",
            name,
            run_id,
            parent_run_id,
            f"retrieval {name}",
            SpanKind.INTERNAL,
            {attr.GEN_AI_OPERATION_NAME: "retrieval"},
            tags,
            metadata,
        )
        if rt.content_capture_enabled():
            run.record_content(attr.INPUT, query)

    # -- inside a run ---------------------------------------------------------------------
    def on_llm_new_token(self, token: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        run = self.runs.get(run_id)
        if run is not None:
            rt.note_chunk(run)

    # -- end ------------------------------------------------------------------------------
    @staticmethod
    def _release_slot(run: rt.Run) -> None:
        slot = STREAM_SLOT.get()
        if slot is not None and slot.run is run:
            slot.run = None

    def _end(self, run_id: uuid.UUID, key: str | None, output: Any) -> None:
        run = self.runs.pop(run_id, None)
        if run is None:
            return
        slot = STREAM_SLOT.get()  # _release_slot inline (bench_langchain app chain)
        if slot is not None and slot.run is run:
            slot.run = None
        extra: dict[str, Any] | None = None
        if self.closed_early and run_id in self.closed_early:
            self.closed_early.discard(run_id)
            extra = {attr.STREAM_CLOSED_EARLY: True}
        if key is not None and rt.content_capture_enabled():
            run.record_content(key, output)
        rt.end_run(run, extra)

    def _error(self, run_id: uuid.UUID, error: BaseException) -> None:
        run = self.runs.pop(run_id, None)
        if run is None:
            return
        self._release_slot(run)
        if self.closed_early:
            self.closed_early.discard(run_id)
        if isinstance(error, GeneratorExit):  # the consumer closed the stream early
            rt.end_run(run, {attr.STREAM_CLOSED_EARLY: True})
        else:
            rt.fail_run(run, error)

    def on_chain_end(self, outputs: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self._end(run_id, attr.OUTPUT, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    def on_tool_end(self, output: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        if getattr(output, "status", None) == "error":  # a handled error's ToolMessage
            run = self.runs.get(run_id)
            if run is not None:
                run.mark_tool_error(getattr(output, "content", output))
        self._end(run_id, attr.GEN_AI_TOOL_CALL_RESULT, output)

    def on_tool_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    def on_retriever_end(self, documents: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        run = self.runs.get(run_id)
        if run is not None:  # as a native retriever records them (viewers read the entries)
            run.set_attributes(
                {"spanhook.retriever.documents": attr.documents_content(documents)[0]}
            )
            record_documents(run, documents)
        self._end(run_id, None, None)

    def on_retriever_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    def on_llm_end(self, response: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        run = self.runs.get(run_id)
        if run is None:
            return
        run.set_attributes(naming.result_attributes(response, rt.streamed(run)))
        if rt.content_capture_enabled():
            run.record_content(attr.GEN_AI_OUTPUT_MESSAGES, naming.output_messages(response))
        self._end(run_id, None, None)

    def on_llm_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        run = self.runs.get(run_id)
        if run is not None:
            run.set_attributes({attr.GEN_AI_REQUEST_STREAM: rt.streamed(run)})
        self._error(run_id, error)

    def __repr__(self) -> str:
        return f"<SpanhookTracer open_runs={len(self.runs)}>"


def _in_run_method(event: str) -> Any:
    """An event inside a run (text, retry, agent step, custom event): recorded on the run's
    span as the event table says, as for a native run."""

    def method(self: SpanhookTracer, *args: Any, run_id: uuid.UUID, **kwargs: Any) -> None:
        run = self.runs.get(run_id)
        if run is not None:
            getattr(run, event)(*args)

    method.__name__ = method.__qualname__ = event
    return method


for _event in IN_RUN_EVENTS:
    if _event != "on_llm_new_token":  # counted as a chunk (above)
        setattr(SpanhookTracer, _event, _in_run_method(_event))


#: The one tracer shared by every callback manager while spanhook.langchain is instrumented.
TRACER = SpanhookTracer()
