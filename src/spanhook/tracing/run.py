"""A run: one chain / model / tool / agent / retriever call, owning one OTel span.

``Run`` is a context manager (sync and async). On enter it resolves the run's scope,
starts its span, makes the span and the run current in the OTel ``Context`` and delivers
``on_<kind>_start``; on exit it delivers ``on_<kind>_end`` or ``on_<kind>_error``, ends the
span and detaches the context, on every exit path (return, exception, ``KeyboardInterrupt``,
cancellation). Attach and detach happen in the same frame, so no context is ever leaked and
no run record outlives its ``with`` block.

Scope (DESIGN section 3). For a run of object O with request consumers Q inside parent P:
handlers and processors of the run = P's inherited + Q + O's constructor ones; what nested
runs inherit = P's inherited + Q. Tags and metadata follow the same rule. ``verbose`` adds
console output for the run and everything nested in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import logging
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from random import getrandbits
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind

from spanhook.callbacks.bridge import adispatch, call_targets, dispatch, sync_targets
from spanhook.tracing import attributes as attr
from spanhook.tracing.consumers import EMPTY, Consumers, classify, merge
from spanhook.tracing.provider import get_tracer, recording_tracer
from spanhook.tracing.settings import content_capture_enabled, get_settings

logger = logging.getLogger("spanhook.tracing")

RunKind = Literal["chain", "llm", "chat_model", "tool", "agent", "retriever"]

_RUN_KEY = otel_context.create_key("spanhook.run")
_attach = otel_context.attach
_detach = otel_context.detach
_get_current = otel_context.get_current
_Context = otel_context.Context
_FINISHED_CTX = otel_context.Context()
_SPAN_KEY = trace.propagation._SPAN_KEY  # the key set_span_in_context uses

#: start, end and error event of each run kind (chat models end like LLMs, agents like chains).
KIND_EVENTS: dict[str, tuple[str, str, str]] = {
    "chain": ("on_chain_start", "on_chain_end", "on_chain_error"),
    "agent": ("on_chain_start", "on_chain_end", "on_chain_error"),
    "llm": ("on_llm_start", "on_llm_end", "on_llm_error"),
    "chat_model": ("on_chat_model_start", "on_llm_end", "on_llm_error"),
    "tool": ("on_tool_start", "on_tool_end", "on_tool_error"),
    "retriever": ("on_retriever_start", "on_retriever_end", "on_retriever_error"),
}


#: Handlers added to every run started in this context (and inherited by its nested runs),
#: e.g. by ``get_usage_callback()``. Read once per ``start_run``; set with
#: :func:`handlers_in_scope`.
SCOPED_HANDLERS: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "spanhook_scoped_handlers", default=()
)


@contextlib.contextmanager
def handlers_in_scope(*handlers: Any) -> Iterator[None]:
    """Add ``handlers`` to every run started inside the ``with`` block (in this thread or
    task, and in threads/tasks that carry its context), like request callbacks."""
    from spanhook.callbacks.bridge import is_classic_handler

    for h in handlers:
        if not is_classic_handler(h):
            raise TypeError(f"handlers_in_scope() takes callback handlers, got {h!r}")
    token = SCOPED_HANDLERS.set(merge(SCOPED_HANDLERS.get(), handlers))
    try:
        yield
    finally:
        SCOPED_HANDLERS.reset(token)


_UNRESOLVED: Any = object()


def current_run() -> Run | None:
    """The innermost run active in this context (task or thread), if any."""
    value = otel_context.get_value(_RUN_KEY)
    return value if isinstance(value, Run) else None


class Request:
    """What a request method was given: ``callbacks``, ``tags``, ``metadata``, ``run_name``,
    ``run_id``. Inherited by every run nested in the request."""

    __slots__ = ("consumers", "metadata", "run_id", "run_name", "tags")

    def __init__(
        self,
        callbacks: object = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        where: object = "the request",
    ) -> None:
        self.consumers = classify(callbacks, where)
        if tags is not None and (
            isinstance(tags, str) or not all(isinstance(t, str) for t in tags)
        ):
            raise TypeError(f"tags for {where} must be a list of strings, got {tags!r}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata for {where} must be a dict, got {metadata!r}")
        if run_id is not None and not isinstance(run_id, uuid.UUID):
            raise TypeError(f"run_id for {where} must be a uuid.UUID, got {run_id!r}")
        self.tags: tuple[str, ...] = tuple(tags) if tags else ()
        self.metadata: Mapping[str, Any] = metadata or {}
        self.run_name = run_name
        self.run_id = run_id

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | None,
        callbacks: object = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        where: object = "the request",
        **extra: Any,
    ) -> Request:
        """Merge a LangChain-style ``config`` dict with explicit keyword arguments."""
        if config is None:
            if tags is None and metadata is None and not extra:
                if callbacks is None:
                    return NO_REQUEST
                if type(callbacks) is list:
                    return _callbacks_only(callbacks, where)
            return cls(callbacks, tags, metadata, where=where, **extra)
        if not isinstance(config, Mapping):
            raise TypeError(f"config for {where} must be a dict, got {config!r}")
        unknown = set(config) - {
            "callbacks",
            "tags",
            "metadata",
            "run_name",
            "run_id",
            "max_concurrency",
            "configurable",
            "recursion_limit",
        }
        if unknown:
            raise TypeError(f"config for {where} has unknown keys {sorted(unknown)}")
        cb = list(config.get("callbacks") or []) + list(callbacks or [])  # type: ignore[call-overload]
        tg = list(config.get("tags") or []) + list(tags or [])
        md = {**(config.get("metadata") or {}), **(metadata or {})}
        return cls(
            cb or None,
            tg or None,
            md or None,
            run_name=extra.get("run_name") or config.get("run_name"),
            run_id=extra.get("run_id") or config.get("run_id"),
            where=where,
        )

    def per_input(self, n: int) -> list[Request]:
        """The request of each of ``n`` runs started by one batch call. A ``run_id`` names one
        run: the first input's (as in langchain-core, with the same warning); the others get
        fresh ids, never a duplicate."""
        if self.run_id is None or n <= 1:
            return [self] * n
        warnings.warn(
            f"run_id {self.run_id} is used only for the first of the {n} inputs of this batch; "
            "the other runs get new ids",
            stacklevel=3,
        )
        rest = copy.copy(self)
        rest.run_id = None
        return [self] + [rest] * (n - 1)


NO_REQUEST = Request()


def _callbacks_only(callbacks: list[Any], where: object) -> Request:
    """The request for ``callbacks=[...]`` alone, without the checks of the other fields.
    (Not cached: a cache would keep per-request handlers, and what they hold, alive.)"""
    request = object.__new__(Request)
    request.consumers = classify(callbacks, where)
    request.tags = ()
    request.metadata = {}
    request.run_name = None
    request.run_id = None
    return request


class Owner:
    """What a primitive contributes to its runs: constructor consumers, tags, metadata,
    verbose. Primitives inherit from this."""

    _consumers: Consumers = EMPTY
    _own_tags: tuple[str, ...] = ()
    _own_metadata: Mapping[str, Any] = {}
    verbose: bool = False


class Run:
    """One run and its span. Create with :func:`start_run`; use as a context manager."""

    __slots__ = (
        "__weakref__",
        "_child_ctx",
        "_chunks",
        "_end_args",
        "_entered",
        "_finished",
        "_first_chunk_ns",
        "_token",
        "_token_targets",
        "child_handlers",
        "child_metadata",
        "child_processors",
        "child_tags",
        "end_kwargs",
        "error_kwargs",
        "handlers",
        "kind",
        "metadata",
        "name",
        "parent",
        "parent_run_id",
        "processors",
        "run_id",
        "span",
        "start_args",
        "start_kwargs",
        "start_ns",
        "tags",
        "verbose",
    )

    kind: str
    name: str
    run_id: uuid.UUID
    parent_run_id: uuid.UUID | None
    parent: Run | None
    span: trace.Span
    handlers: tuple[Any, ...]
    processors: tuple[SpanProcessor, ...]
    tags: list[str]
    metadata: dict[str, Any]
    child_handlers: tuple[Any, ...]
    child_processors: tuple[SpanProcessor, ...]
    child_tags: list[str]
    child_metadata: dict[str, Any]
    verbose: bool
    start_args: tuple[Any, ...]
    start_kwargs: dict[str, Any]
    end_kwargs: dict[str, Any]
    error_kwargs: dict[str, Any]
    start_ns: int
    _end_args: tuple[Any, ...]
    _entered: bool
    _finished: bool
    _token: Any
    _token_targets: Any
    _chunks: int
    _first_chunk_ns: int
    _child_ctx: otel_context.Context

    # -- events inside the run -----------------------------------------------------------
    def _base_kwargs(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "parent_run_id": self.parent_run_id, "tags": self.tags}

    def emit(self, event: str, *args: Any, **extra: Any) -> None:
        """Deliver an event of this run to its handlers (sync)."""
        if self.handlers:
            kwargs = self._base_kwargs()
            kwargs.update(extra)
            dispatch(self.handlers, event, args, kwargs)

    async def aemit(self, event: str, *args: Any, **extra: Any) -> None:
        """Deliver an event of this run to its handlers (async)."""
        if self.handlers:
            kwargs = self._base_kwargs()
            kwargs.update(extra)
            await adispatch(self.handlers, event, args, kwargs)

    def _chunk_span_events(self, token: str, n: int) -> None:
        """The first chunk's time and event, and per-token events when enabled."""
        if n == 1:
            self._first_chunk_ns = time.monotonic_ns()
            self.span.add_event("spanhook.first_token")
        if get_settings().token_events:
            attrs: dict[str, Any] = {"spanhook.token.index": n - 1}
            if content_capture_enabled():
                text = attr.content_attribute(self.span, "spanhook.token.text", token)
                if text is not None:
                    attrs["spanhook.token.text"] = text
            self.span.add_event("spanhook.token", attrs)

    def _note_chunk(self, token: str) -> dict[str, Any] | None:
        n = self._chunks = self._chunks + 1
        if n == 1 or get_settings().token_events:
            self._chunk_span_events(token, n)
        if not self.handlers:
            return None
        return {
            "token": token,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "tags": self.tags,
        }

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **extra: Any) -> None:
        """A streamed token: counted on the span, delivered to every handler in scope.

        This is the hot path of streaming, kept lean: the span is touched only for the first
        token (unless per-token events are on) and the receivers are resolved once per run.
        """
        n = self._chunks = self._chunks + 1
        if n == 1 or get_settings().token_events:
            self._chunk_span_events(token, n)
        handlers = self.handlers
        if not handlers:
            return
        kwargs = {
            "token": token,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "tags": self.tags,
            "chunk": chunk,
        }
        if extra:
            kwargs.update(extra)
        targets = self._token_targets
        if targets is _UNRESOLVED:  # first token: resolve the receivers once per run
            targets = self._token_targets = sync_targets(handlers, "on_llm_new_token")
        if targets is None:
            dispatch(handlers, "on_llm_new_token", (), kwargs)
        else:
            call_targets(targets, "on_llm_new_token", kwargs)

    async def aon_llm_new_token(self, token: str, *, chunk: Any = None, **extra: Any) -> None:
        kwargs = self._note_chunk(token)
        if kwargs is not None:
            kwargs["chunk"] = chunk
            if extra:
                kwargs.update(extra)
            await adispatch(self.handlers, "on_llm_new_token", (), kwargs)

    def _event_span(
        self, name: str, content: Mapping[str, Any], plain: Mapping[str, Any] | None = None
    ) -> None:
        if not self.span.is_recording():
            return
        limit = get_settings().max_content_length
        attrs: dict[str, Any] = attr.bounded_attributes(plain, limit) if plain else {}
        if content and content_capture_enabled():
            for k, v in content.items():
                value = attr.content_attribute(self.span, k, v)
                if value is not None:
                    attrs[k] = value
        self.span.add_event(name, attrs)

    def on_text(self, text: str, **extra: Any) -> None:
        self._event_span("spanhook.text", {"spanhook.text": text})
        self.emit("on_text", text, **extra)

    async def aon_text(self, text: str, **extra: Any) -> None:
        self._event_span("spanhook.text", {"spanhook.text": text})
        await self.aemit("on_text", text, **extra)

    def _action_event(self, action: Any) -> None:
        self._event_span(
            "spanhook.agent.action",
            {attr.GEN_AI_TOOL_CALL_ARGUMENTS: action.tool_input, "spanhook.log": action.log},
            {attr.GEN_AI_TOOL_NAME: action.tool},
        )

    def on_agent_action(self, action: Any, **extra: Any) -> None:
        self._action_event(action)
        self.emit("on_agent_action", action, **extra)

    async def aon_agent_action(self, action: Any, **extra: Any) -> None:
        self._action_event(action)
        await self.aemit("on_agent_action", action, **extra)

    def on_agent_finish(self, finish: Any, **extra: Any) -> None:
        self._event_span("spanhook.agent.finish", {"spanhook.output": finish.return_values})
        self.emit("on_agent_finish", finish, **extra)

    async def aon_agent_finish(self, finish: Any, **extra: Any) -> None:
        self._event_span("spanhook.agent.finish", {"spanhook.output": finish.return_values})
        await self.aemit("on_agent_finish", finish, **extra)

    def on_retry(self, retry_state: Any, **extra: Any) -> None:
        self._event_span(
            "spanhook.retry",
            {},
            {
                "spanhook.retry.attempt": int(getattr(retry_state, "attempt_number", 0)),
                "spanhook.retry.error": attr.safe_repr(getattr(retry_state, "outcome_error", None)),
            },
        )
        self.emit("on_retry", retry_state, **extra)

    async def aon_retry(self, retry_state: Any, **extra: Any) -> None:
        self._event_span(
            "spanhook.retry",
            {},
            {"spanhook.retry.attempt": int(getattr(retry_state, "attempt_number", 0))},
        )
        await self.aemit("on_retry", retry_state, **extra)

    def _custom_kwargs(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "tags": self.tags, "metadata": self.metadata}

    def on_custom_event(self, name: str, data: Any) -> None:
        self._event_span(
            "spanhook.custom_event", {"spanhook.data": data}, {"spanhook.event.name": name}
        )
        if self.handlers:
            dispatch(self.handlers, "on_custom_event", (name, data), self._custom_kwargs())

    async def aon_custom_event(self, name: str, data: Any) -> None:
        self._event_span(
            "spanhook.custom_event", {"spanhook.data": data}, {"spanhook.event.name": name}
        )
        if self.handlers:
            await adispatch(self.handlers, "on_custom_event", (name, data), self._custom_kwargs())

    def get_child(self, tag: str | None = None) -> list[Any]:
        """LangChain compatibility: nested runs already inherit this run's scope through the
        context, so passing this as ``callbacks=`` adds nothing."""
        return []

    # -- results -------------------------------------------------------------------------
    def set_result(self, *args: Any, **extra: Any) -> None:
        """What ``on_<kind>_end`` receives (positional arguments plus extra keywords)."""
        self._end_args = args
        if extra:
            self.end_kwargs.update(extra)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self.span.is_recording():
            limit = get_settings().max_content_length
            self.span.set_attributes(attr.bounded_attributes(attributes, limit))

    def capturing(self) -> bool:
        """Whether content put on this run's span would be recorded (capture on, span
        recording): check it before building a costly content payload."""
        return content_capture_enabled() and self.span.is_recording()

    def record_content(self, key: str, value: Any) -> None:
        """Put ``value`` on the span under ``key`` if content capture is on (redacted by the
        ``redact`` hook, if any, then truncated)."""
        if self.capturing():
            recorded = attr.content_attribute(self.span, key, value)
            if recorded is not None:
                self.span.set_attribute(key, recorded)

    # -- lifecycle -------------------------------------------------------------------------
    def _begin(self) -> None:
        if self._entered:
            raise RuntimeError(f"run {self.name!r} ({self.run_id}) was already entered")
        self._entered = True
        self._token = otel_context.attach(self._child_ctx)
        for p in self.processors:
            try:
                p.on_start(self.span, parent_context=self._child_ctx)  # type: ignore[arg-type]
            except Exception:
                logger.exception("span processor %r failed in on_start", p)

    def _start_kwargs(self) -> dict[str, Any]:
        kwargs = {
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "tags": self.tags,
            "metadata": self.metadata,
        }
        kwargs.update(self.start_kwargs)
        return kwargs

    def _error_status(self, error: BaseException) -> None:
        span = self.span
        if span.is_recording():
            attr.record_error(span, error, get_settings().max_content_length)

    def _stream_attributes(self) -> None:
        if self._chunks and self.span.is_recording():
            self.span.set_attribute(attr.STREAM_CHUNKS, self._chunks)
            self.span.set_attribute(
                attr.GEN_AI_RESPONSE_TTFC, (self._first_chunk_ns - self.start_ns) / 1e9
            )

    def _close(self) -> None:
        """End the span, hand it to scoped processors, detach the context."""
        if self._finished:
            token, self._token = self._token, None
            if token is not None:
                _detach(token)
            return
        self._finished = True
        if self._chunks:
            self._stream_attributes()
        span = self.span
        try:
            span.end()
        finally:
            if self.processors and isinstance(span, ReadableSpan):
                readable = getattr(span, "_readable_span", None)
                finished = readable() if readable is not None else span
                for p in self.processors:
                    try:
                        p.on_end(finished)
                    except Exception:
                        logger.exception("span processor %r failed in on_end", p)
            token, self._token = self._token, None
            if token is not None:
                _detach(token)
            # The run's context holds the run: drop it so that a finished run is freed by
            # reference counting instead of waiting for the cycle collector.
            self._child_ctx = _FINISHED_CTX

    def __enter__(self) -> Run:
        if self._entered:
            raise RuntimeError(f"run {self.name!r} ({self.run_id}) was already entered")
        self._entered = True
        self._token = _attach(self._child_ctx)
        if self.processors:
            self._processors_start()
        handlers = self.handlers
        if handlers:
            kwargs = {
                "run_id": self.run_id,
                "parent_run_id": self.parent_run_id,
                "tags": self.tags,
                "metadata": self.metadata,
                **self.start_kwargs,
            }
            try:
                dispatch(handlers, KIND_EVENTS[self.kind][0], self.start_args, kwargs)
            except BaseException as e:
                self._fail(e)
                raise
        return self

    def _processors_start(self) -> None:
        for p in self.processors:
            try:
                p.on_start(self.span, parent_context=self._child_ctx)  # type: ignore[arg-type]
            except Exception:
                logger.exception("span processor %r failed in on_start", p)

    def _fail(self, error: BaseException) -> None:
        try:
            self._error_status(error)
            if self.handlers:
                kwargs = self._base_kwargs()
                kwargs.update(self.error_kwargs)
                dispatch(self.handlers, KIND_EVENTS[self.kind][2], (error,), kwargs)
        finally:
            self._close()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is not None:
            self._fail(exc)
            return False
        handlers = self.handlers
        if not handlers:
            self._close()
            return False
        try:
            kwargs = {"run_id": self.run_id, "parent_run_id": self.parent_run_id, "tags": self.tags}
            if self.end_kwargs:
                kwargs.update(self.end_kwargs)
            dispatch(handlers, KIND_EVENTS[self.kind][1], self._end_args, kwargs)
        except BaseException as e:  # a raise_error handler rejected the result
            self._error_status(e)
            raise
        finally:
            self._close()
        return False

    async def __aenter__(self) -> Run:
        self._begin()
        if self.handlers:
            try:
                await adispatch(
                    self.handlers, KIND_EVENTS[self.kind][0], self.start_args, self._start_kwargs()
                )
            except BaseException as e:
                await self._afail(e)
                raise
        return self

    async def _afail(self, error: BaseException) -> None:
        try:
            self._error_status(error)
            if self.handlers:
                kwargs = self._base_kwargs()
                kwargs.update(self.error_kwargs)
                await _shielded(
                    adispatch(self.handlers, KIND_EVENTS[self.kind][2], (error,), kwargs)
                )
        finally:
            self._close()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is not None:
            await self._afail(exc)
            return False
        try:
            if self.handlers:
                kwargs = self._base_kwargs()
                kwargs.update(self.end_kwargs)
                await _shielded(
                    adispatch(self.handlers, KIND_EVENTS[self.kind][1], self._end_args, kwargs)
                )
        except (asyncio.CancelledError, GeneratorExit):
            raise  # interrupted while delivering the end event: the run itself succeeded
        except BaseException as e:
            self._error_status(e)
            raise
        finally:
            self._close()
        return False

    # -- detached use (generators) -------------------------------------------------------------
    # A generator must not stay attached across ``yield`` (the caller would run inside the
    # run's context): it opens the run, attaches around each step, and closes it.
    def open(self) -> None:
        """Start the run (span + start event) without leaving it current."""
        self.__enter__()
        self._detach_now()

    async def aopen(self) -> None:
        await self.__aenter__()
        self._detach_now()

    def _detach_now(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            otel_context.detach(token)

    def close_ok(self) -> None:
        """End an opened run successfully (end event with :meth:`set_result`'s result)."""
        self._token = otel_context.attach(self._child_ctx)
        self.__exit__(None, None, None)

    def close_error(self, error: BaseException) -> None:
        self._token = otel_context.attach(self._child_ctx)
        self._fail(error)

    async def aclose_ok(self) -> None:
        self._token = otel_context.attach(self._child_ctx)
        await self.__aexit__(None, None, None)

    async def aclose_error(self, error: BaseException) -> None:
        self._token = otel_context.attach(self._child_ctx)
        await self._afail(error)

    def attach(self) -> object:
        """Make this run current (for a generator step); pair with :meth:`detach`."""
        return otel_context.attach(self._child_ctx)

    @staticmethod
    def detach(token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]

    @property
    def trace_id(self) -> str:
        """The run's OTel trace id (32 hex digits), known as soon as the run starts."""
        return format(self.span.get_span_context().trace_id, "032x")

    @property
    def span_id(self) -> str:
        return format(self.span.get_span_context().span_id, "016x")

    def __repr__(self) -> str:
        return f"<Run {self.kind} {self.name!r} {self.run_id}>"


async def _shielded(coro: Any) -> None:
    """Deliver end/error events even if the task is being cancelled again meanwhile."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            raise task.exception() from None
        raise


_new_uuid = object.__new__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown  # an enum member: looked up once, not per run
_set = object.__setattr__
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_run_id() -> uuid.UUID:
    """A random version-4 UUID, built without ``uuid.uuid4()``'s syscall and validation."""
    u = _new_uuid(uuid.UUID)
    _set(u, "int", (getrandbits(128) & _V4_CLEAR) | _V4_SET)
    _set(u, "is_safe", _UNKNOWN_SAFETY)
    return u


_SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)


def _light_span(ctx: otel_context.Context) -> trace.Span:
    """A non-recording span with fresh ids, for runs whose span would reach no one."""
    parent = ctx.get(_SPAN_KEY)
    parent_sc = parent.get_span_context() if parent is not None else None  # type: ignore[attr-defined]
    if parent_sc is not None and parent_sc.is_valid:
        trace_id, flags = parent_sc.trace_id, parent_sc.trace_flags
    else:
        trace_id, flags = getrandbits(128) or 1, _SAMPLED
    return trace.NonRecordingSpan(trace.SpanContext(trace_id, getrandbits(64) or 1, False, flags))


def _verbose_consumers() -> tuple[Any, Any]:
    from spanhook.callbacks.stdout import StdOutCallbackHandler
    from spanhook.tracing.console import SpanTreePrinter

    return StdOutCallbackHandler(), SpanTreePrinter()


def start_run(
    kind: RunKind,
    owner: Owner,
    request: Request | None,
    *,
    name: str,
    span_name: str,
    start_args: tuple[Any, ...],
    start_kwargs: dict[str, Any] | None = None,
    span_kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
) -> Run:
    """Resolve the scope of a run of ``owner`` and start its span (not yet current)."""
    ctx = _get_current()
    parent: Run | None = ctx.get(_RUN_KEY)  # type: ignore[assignment]
    if request is None:
        request = NO_REQUEST
    if parent is not None:
        ih, ip = parent.child_handlers, parent.child_processors
        itags, imeta, verbose = parent.child_tags, parent.child_metadata, parent.verbose
    else:
        ih, ip, itags, imeta, verbose = (), (), [], {}, False
    scoped = SCOPED_HANDLERS.get()
    if scoped:
        ih = merge(ih, scoped)
    rc = request.consumers
    if rc is not EMPTY:
        if rc.handlers:
            ih = merge(ih, rc.handlers) if ih else rc.handlers
        if rc.processors:
            ip = merge(ip, rc.processors) if ip else rc.processors
    if request.tags:
        itags = itags + [t for t in request.tags if t not in itags]
    if request.metadata:
        imeta = {**imeta, **request.metadata}
    if owner.verbose and not verbose:
        verbose = True
        from spanhook.callbacks.stdout import StdOutCallbackHandler

        out, tree = _verbose_consumers()
        if not any(isinstance(h, StdOutCallbackHandler) for h in ih):
            ih = (*ih, out)
        ip = (*ip, tree)
    oc = owner._consumers
    handlers = merge(ih, oc.handlers) if oc.handlers else ih
    processors = merge(ip, oc.processors) if oc.processors else ip
    own_tags = owner._own_tags
    # Each run hands its handlers lists and dicts of its own: a handler that changes them in
    # place changes nothing for the parent, its siblings or the span.
    tags = itags + [t for t in own_tags if t not in itags] if own_tags else itags[:]
    metadata = {**imeta, **owner._own_metadata} if owner._own_metadata else imeta.copy()

    run_id = request.run_id or new_run_id()
    if request.run_name:
        name = request.run_name
    span_attrs: dict[str, Any] = {attr.RUN_KIND: kind, attr.RUN_ID: str(run_id)}
    settings = get_settings()
    if attributes:
        span_attrs.update(attr.bounded_attributes(attributes, settings.max_content_length))
    if tags:
        span_attrs[attr.TAGS] = attr.tags_attribute(tags, settings.max_content_length)
    if metadata:
        span_attrs.update(
            attr.metadata_attributes(
                metadata,
                settings.max_content_length,
                settings.redact,
                settings.max_metadata_attributes,
            )
        )
    tracer = recording_tracer()
    if tracer is None and not processors:
        span: trace.Span = _light_span(ctx)
    else:
        span = (tracer or get_tracer()).start_span(
            attr.span_name(span_name), context=ctx, kind=span_kind, attributes=span_attrs
        )

    run = Run()
    run.kind = kind
    run.name = name
    run.run_id = run_id
    run.parent = parent
    run.parent_run_id = parent.run_id if parent is not None else None
    run.span = span
    run.handlers = handlers
    run.processors = processors
    run.tags = tags
    run.metadata = metadata
    run.child_handlers = ih
    run.child_processors = ip
    run.child_tags = itags
    run.child_metadata = imeta
    run.verbose = verbose
    run.start_args = start_args
    run.start_kwargs = start_kwargs if start_kwargs is not None else {"name": name}
    run.end_kwargs = {}
    run.error_kwargs = {}
    run._end_args = (None,)
    run._entered = False
    run._finished = False
    run._token = None
    run._chunks = 0
    run._token_targets = _UNRESOLVED
    run._first_chunk_ns = 0
    run.start_ns = time.monotonic_ns()
    run._child_ctx = _Context({**ctx, _SPAN_KEY: span, _RUN_KEY: run})
    return run


def dispatch_custom_event(name: str, data: Any) -> None:
    """Send a custom event from code running inside a run to the handlers in its scope."""
    run = current_run()
    if run is None:
        raise RuntimeError(
            f"dispatch_custom_event({name!r}) was called outside any run: custom events "
            "belong to the run that emits them"
        )
    run.on_custom_event(name, data)


async def adispatch_custom_event(name: str, data: Any) -> None:
    run = current_run()
    if run is None:
        raise RuntimeError(
            f"adispatch_custom_event({name!r}) was called outside any run: custom events "
            "belong to the run that emits them"
        )
    await run.aon_custom_event(name, data)
