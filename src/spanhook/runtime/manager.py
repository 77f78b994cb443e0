"""The run-manager surface of a run: LangChain's ``on_*`` / ``aon_*`` methods, results and
span content.

Every event inside a run goes through :meth:`RunManager.emit` / :meth:`RunManager.aemit`: the
event's span recipe (:mod:`spanhook.events`) is applied once for both, then the event is
delivered; the public methods are typed one-liners over them. Tokens take a lean path of their
own (a plan resolved once per run) with the accounting shared by both twins.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from spanhook._state import STATE
from spanhook.events import EVENTS, STANDARD
from spanhook.runtime import content, spans
from spanhook.runtime.dispatch import adispatch, deliver_planned, dispatch, token_plan
from spanhook.runtime.tokens import UNRESOLVED, TokenStream
from spanhook.tracing import attributes as attr
from spanhook.tracing.settings import content_capture_enabled, get_settings

if TYPE_CHECKING:
    from spanhook.runtime.run import Run
    from spanhook.runtime.scope import Scope

#: What a delivery step returns: handlers, event, positional and keyword arguments, and the
#: run (for run-tracking handlers; start events only).
Delivery = tuple[tuple[Any, ...], str, tuple[Any, ...], dict[str, Any], "Run | None"]


class RunManager:
    """Base of :class:`~spanhook.runtime.run.Run`: what code inside a run calls."""

    __slots__ = ()

    run_id: uuid.UUID
    parent_run_id: uuid.UUID | None
    span: trace.Span
    scope: Scope
    stream: TokenStream | None
    end_kwargs: dict[str, Any]
    _end_args: tuple[Any, ...]

    # -- scope, as LangChain's run managers expose it ----------------------------------------
    @property
    def handlers(self) -> tuple[Any, ...]:
        return self.scope.handlers

    @property
    def tags(self) -> list[str]:
        return self.scope.tags

    @property
    def metadata(self) -> dict[str, Any]:
        return self.scope.metadata

    # -- events inside the run ---------------------------------------------------------------
    def _context_kwargs(self, context: tuple[str, ...], extra: dict[str, Any]) -> dict[str, Any]:
        if context is STANDARD:
            tags = self.scope.tags
            kwargs = {"run_id": self.run_id, "parent_run_id": self.parent_run_id, "tags": tags}
        else:
            kwargs = {name: getattr(self, name) for name in context}
        if extra:
            kwargs.update(extra)
        return kwargs

    def _event(self, event: str, args: tuple[Any, ...], extra: dict[str, Any]) -> Delivery | None:
        """Record ``event`` on the span (its recipe); what to deliver, if anyone listens."""
        spec = EVENTS[event]
        if spec.span is not None:
            content.record_event(self.span, spec.span, args)
        handlers = self.scope.handlers
        if not handlers:
            return None
        return handlers, event, args, self._context_kwargs(spec.context, extra), None

    def emit(self, event: str, *args: Any, **extra: Any) -> None:
        """Record an event of this run on its span and deliver it to its handlers (sync)."""
        delivery = self._event(event, args, extra)
        if delivery is not None:
            dispatch(*delivery)

    async def aemit(self, event: str, *args: Any, **extra: Any) -> None:
        """Record an event of this run on its span and deliver it to its handlers (async)."""
        delivery = self._event(event, args, extra)
        if delivery is not None:
            await adispatch(*delivery)

    def _token_kwargs(self, token: str, chunk: Any, extra: dict[str, Any]) -> dict[str, Any] | None:
        stream = self.stream
        if stream is None:
            stream = self.stream = TokenStream()  # type: ignore[misc]  # a slot of Run
        n = stream.count = stream.count + 1
        settings = STATE.settings  # the span is touched only when it must be
        if n == 1 or (settings or get_settings()).token_events:
            stream.note(self.span, token, n)
        scope = self.scope
        if not scope.handlers:
            return None
        kwargs = {
            "token": token,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "tags": scope.tags,
            "chunk": chunk,
        }
        if extra:
            kwargs.update(extra)
        return kwargs

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **extra: Any) -> None:
        """A streamed token: counted on the span, delivered to every handler in scope along a
        plan resolved once per run (the hot path of streaming)."""
        kwargs = self._token_kwargs(token, chunk, extra)
        if kwargs is None:
            return
        stream: TokenStream = self.stream  # type: ignore[assignment]
        plan = stream.plan
        if plan is UNRESOLVED:
            plan = stream.plan = token_plan(self.scope.handlers)
        if plan is None:
            dispatch(self.scope.handlers, "on_llm_new_token", (), kwargs)
        else:
            deliver_planned(plan, kwargs)

    def count_token(self, token: str) -> None:
        """Count a streamed token on the span (chunk count, time to first chunk) without
        delivering it: for a chunk the model's own ``_stream`` did not report."""
        self._token_kwargs(token, None, {})

    async def aon_llm_new_token(self, token: str, *, chunk: Any = None, **extra: Any) -> None:
        kwargs = self._token_kwargs(token, chunk, extra)
        if kwargs is not None:
            await adispatch(self.scope.handlers, "on_llm_new_token", (), kwargs)

    def on_text(self, text: str, **extra: Any) -> None:
        self.emit("on_text", text, **extra)

    async def aon_text(self, text: str, **extra: Any) -> None:
        await self.aemit("on_text", text, **extra)

    def on_agent_action(self, action: Any, **extra: Any) -> None:
        self.emit("on_agent_action", action, **extra)

    async def aon_agent_action(self, action: Any, **extra: Any) -> None:
        await self.aemit("on_agent_action", action, **extra)

    def on_agent_finish(self, finish: Any, **extra: Any) -> None:
        self.emit("on_agent_finish", finish, **extra)

    async def aon_agent_finish(self, finish: Any, **extra: Any) -> None:
        await self.aemit("on_agent_finish", finish, **extra)

    def on_retry(self, retry_state: Any, **extra: Any) -> None:
        self.emit("on_retry", retry_state, **extra)

    async def aon_retry(self, retry_state: Any, **extra: Any) -> None:
        await self.aemit("on_retry", retry_state, **extra)

    def on_custom_event(self, name: str, data: Any) -> None:
        self.emit("on_custom_event", name, data)

    async def aon_custom_event(self, name: str, data: Any) -> None:
        await self.aemit("on_custom_event", name, data)

    def get_child(self, tag: str | None = None) -> list[Any]:
        """LangChain compatibility: nested runs already inherit this run's scope through the
        context, so passing this as ``callbacks=`` adds nothing."""
        return []

    # -- results and span content ------------------------------------------------------------
    def set_result(self, *args: Any, **extra: Any) -> None:
        """What ``on_<kind>_end`` receives (positional arguments plus extra keywords)."""
        self._end_args = args  # type: ignore[misc]  # a slot of Run
        if extra:
            self.end_kwargs = {**self.end_kwargs, **extra}  # type: ignore[misc]  # a slot of Run

    @property
    def result(self) -> Any:
        """The result set with :meth:`set_result` (its first positional argument)."""
        return self._end_args[0]

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self.span.is_recording():
            limit = get_settings().max_content_length
            spans.set_attributes(self.span, attr.bounded_attributes(attributes, limit))

    def capturing(self) -> bool:
        """Whether content put on this run's span would be recorded (capture on, span
        recording): check it before building a costly content payload."""
        return content_capture_enabled() and self.span.is_recording()

    def record_content(self, key: str, value: Any) -> None:
        """Put ``value`` on the span under ``key`` if content capture is on (redacted by the
        ``redact`` hook, if any, then truncated)."""
        content.record_content(self.span, key, value, self.parent_run_id is not None)

    def mark_tool_error(self, text: object) -> None:
        """This tool run returns an error as its result (a handled ``ToolException``): the
        span gets ``error.type`` ``tool_error`` and ERROR status; handlers still receive
        ``on_tool_end``, as langchain-core delivers it."""
        if self.span.is_recording():
            attr.record_tool_error(self.span, text, get_settings().max_content_length)
