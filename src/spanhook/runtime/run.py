"""A run: one chain / model / tool / agent / retriever call, owning one OTel span.

``Run`` is a context manager (sync and async). ``start_run`` (:mod:`spanhook.runtime.start`)
resolves the run's scope (:func:`spanhook.runtime.scope.derive`) and starts its span;
entering makes the span and the
run current in the OTel ``Context`` and delivers ``on_<kind>_start``; exiting delivers
``on_<kind>_end`` or ``on_<kind>_error``, ends the span and detaches the context, on every
exit path (return, exception, ``KeyboardInterrupt``, cancellation). Attach and detach happen
in the same frame, so no context is ever leaked and no run record outlives its block.

Every decision is a shared step without I/O (``_begin``, ``_end_delivery``,
``_error_delivery``, ``_close``); the sync and async methods only call or await
:func:`dispatch` / :func:`adispatch` with what a step returns. Events inside a run
(:mod:`spanhook.runtime.manager`) go through ``emit`` / ``aemit``, which apply the event's
span recipe from :mod:`spanhook.events` once for both.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace

from spanhook.events import KIND_EVENTS, graph_signal
from spanhook.runtime import content, spans
from spanhook.runtime.dispatch import adispatch, dispatch
from spanhook.runtime.manager import Delivery, RunManager
from spanhook.runtime.scope import Scope
from spanhook.runtime.spans import RUN_KEY, finished_view
from spanhook.runtime.tokens import TokenStream
from spanhook.tracing import attributes as attr
from spanhook.tracing.settings import get_settings

logger = logging.getLogger("spanhook.tracing")

RunKind = Literal["chain", "llm", "chat_model", "tool", "agent", "retriever"]

_attach = spans.attach  # module aliases: the lifecycle runs once or twice per run
_reset = spans.reset
_detach = otel_context.detach
_FINISHED_CTX = otel_context.Context()
_NEW, _ACTIVE, _DONE = 0, 1, 2


def current_run() -> Run | None:
    """The innermost run active in this context (task or thread), if any."""
    value = otel_context.get_value(RUN_KEY)
    return value if isinstance(value, Run) else None


class Run(RunManager):
    """One run and its span: identity, span, scope, lifecycle and result. Create with
    :func:`spanhook.runtime.start.start_run`; use as a context manager (sync or async)."""

    __slots__ = (
        "__weakref__",
        "_ctx",
        "_end_args",
        "_state",
        "_token",
        "end_kwargs",
        "error_kwargs",
        "inherited",
        "kind",
        "name",
        "parent_run_id",
        "run_id",
        "scope",
        "span",
        "start_args",
        "start_kwargs",
        "start_ns",
        "stream",
    )

    kind: str
    name: str
    run_id: uuid.UUID
    parent_run_id: uuid.UUID | None
    span: trace.Span
    #: The run's own scope, and the one its nested runs inherit.
    scope: Scope
    inherited: Scope
    start_args: tuple[Any, ...]
    start_kwargs: dict[str, Any]
    end_kwargs: dict[str, Any]
    error_kwargs: dict[str, Any]
    start_ns: int
    #: Token accounting, once the run streams.
    stream: TokenStream | None
    _end_args: tuple[Any, ...]
    _state: int
    _token: Any
    _ctx: otel_context.Context

    # -- lifecycle: shared steps -------------------------------------------------------------
    def _begin(self) -> Delivery | None:
        """Make the run current and start its scoped processors; the start event."""
        if self._state != _NEW:
            raise RuntimeError(f"run {self.name!r} ({self.run_id}) was already entered")
        self._state = _ACTIVE
        self._token = _attach(self._ctx)
        handlers, processors, tags, metadata, _ = self.scope
        if processors:
            for p in processors:
                try:
                    p.on_start(self.span, parent_context=self._ctx)  # type: ignore[arg-type]
                except Exception:
                    logger.exception("span processor %r failed in on_start", p)
        if not handlers:
            return None
        kwargs = {
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "tags": tags,
            "metadata": metadata,
            **self.start_kwargs,
        }
        args = self.start_args  # (serialized, payload): the payload goes out as a copy
        if len(args) == 2:
            payload = args[1]  # (a dict mostly: copied inline, this runs once per run)
            args = (args[0], payload.copy() if type(payload) is dict else content.copy(payload))
        return handlers, KIND_EVENTS[self.kind][0], args, kwargs, self

    def _end_delivery(self) -> Delivery | None:
        handlers, _, tags, _, _ = self.scope
        if not handlers:
            return None
        kwargs = {"run_id": self.run_id, "parent_run_id": self.parent_run_id, "tags": tags}
        if self.end_kwargs:
            kwargs.update(self.end_kwargs)
        args = self._end_args
        if len(args) == 1:
            result = args[0]
            args = (result.copy() if type(result) is dict else content.copy(result),)
        return handlers, KIND_EVENTS[self.kind][1], args, kwargs, None

    def _error_delivery(self, error: BaseException) -> Delivery | None:
        """Mark the span failed; the error event."""
        self._error_status(error)
        handlers, _, tags, _, _ = self.scope
        if not handlers:
            return None
        kwargs = {"run_id": self.run_id, "parent_run_id": self.parent_run_id, "tags": tags}
        if self.error_kwargs:
            kwargs.update(self.error_kwargs)
        return handlers, KIND_EVENTS[self.kind][2], (error,), kwargs, None

    def _error_status(self, error: BaseException) -> None:
        span = self.span
        if span.is_recording():
            signal = graph_signal(error)
            if signal is not None:  # LangGraph's control flow: an event, no error status
                content.record_event(span, signal, (error,))
            else:
                attr.record_error(span, error, get_settings().max_content_length)

    def _close(self) -> None:
        """End the span, hand it to scoped processors, detach the context (once)."""
        token, self._token = self._token, None
        if self._state == _DONE:
            if token is not None:
                _detach(token)
            return
        self._state = _DONE
        span = self.span
        try:
            if self.stream is not None:
                self.stream.record(span, self.start_ns)
            span.end()
        finally:
            processors = self.scope.processors
            if processors:
                finished = finished_view(span)
                for p in processors:
                    try:
                        p.on_end(finished)
                    except Exception:
                        logger.exception("span processor %r failed in on_end", p)
            if token is not None:
                try:
                    _reset(token)
                except Exception:  # not restorable here: OTel's detach logs why
                    _detach(token)
            # The run's context holds the run: drop it so that a finished run is freed by
            # reference counting instead of waiting for the cycle collector.
            self._ctx = _FINISHED_CTX

    # -- lifecycle: sync ---------------------------------------------------------------------
    def __enter__(self) -> Run:
        delivery = self._begin()
        if delivery is not None:
            try:
                dispatch(*delivery)
            except BaseException as e:
                self._fail(e)
                raise
        return self

    def _fail(self, error: BaseException) -> None:
        try:
            delivery = self._error_delivery(error)
            if delivery is not None:
                dispatch(*delivery)
        finally:
            self._close()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is not None:
            self._fail(exc)
            return False
        delivery = self._end_delivery()
        if delivery is None:
            self._close()
            return False
        try:
            dispatch(*delivery)
        except BaseException as e:  # a raise_error handler rejected the result
            self._error_status(e)
            raise
        finally:
            self._close()
        return False

    # -- lifecycle: async --------------------------------------------------------------------
    async def __aenter__(self) -> Run:
        delivery = self._begin()
        if delivery is not None:
            try:
                await adispatch(*delivery)
            except BaseException as e:
                await self._afail(e)
                raise
        return self

    async def _afail(self, error: BaseException) -> None:
        try:
            delivery = self._error_delivery(error)
            if delivery is not None:
                await _shielded(adispatch(*delivery))
        finally:
            self._close()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is not None:
            await self._afail(exc)
            return False
        delivery = self._end_delivery()
        try:
            if delivery is not None:
                await _shielded(adispatch(*delivery))
        except (asyncio.CancelledError, GeneratorExit):
            raise  # interrupted while delivering the end event: the run itself succeeded
        except BaseException as e:
            self._error_status(e)
            raise
        finally:
            self._close()
        return False

    # -- detached use (generators) -----------------------------------------------------------
    # A generator must not stay attached across ``yield`` (the caller would run inside the
    # run's context): it opens the run, is made current around each step, and closes it.
    def attach(self) -> object:
        """Make this run current (for a generator step); pair with :meth:`detach`."""
        return _attach(self._ctx)

    @staticmethod
    def detach(token: object) -> None:
        _detach(token)  # type: ignore[arg-type]

    def _detach_now(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            _detach(token)

    def open(self) -> None:
        """Start the run (span + start event) without leaving it current."""
        self.__enter__()
        self._detach_now()

    async def aopen(self) -> None:
        await self.__aenter__()
        self._detach_now()

    def close_ok(self) -> None:
        """End an opened run successfully (end event with :meth:`set_result`'s result)."""
        self._token = _attach(self._ctx)
        self.__exit__(None, None, None)

    def close_error(self, error: BaseException) -> None:
        self._token = _attach(self._ctx)
        self._fail(error)

    async def aclose_ok(self) -> None:
        self._token = _attach(self._ctx)
        await self.__aexit__(None, None, None)

    async def aclose_error(self, error: BaseException) -> None:
        self._token = _attach(self._ctx)
        await self._afail(error)

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
    """Deliver end/error events even if the task is being cancelled again meanwhile. The
    delivery's own exception is re-raised here, in the run's task, never from the helper
    task (where asyncio would raise a ``KeyboardInterrupt`` out of the event loop)."""

    async def guarded() -> BaseException | None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            return e
        return None

    task = asyncio.ensure_future(guarded())
    try:
        error = await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            await asyncio.wait([task])
        late = None if task.cancelled() else task.result()
        if late is not None:
            raise late from None
        raise
    if error is not None:
        raise error
