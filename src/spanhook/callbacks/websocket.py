"""``WebSocketCallbackHandler``: stream a request's events to a WebSocket as JSON messages.

Pass it as a *request* callback, so it sees exactly one request::

    async def serve(ws):                      # a websockets server connection
        question = await ws.recv()
        handler = WebSocketHandler(ws)
        answer = await agent.arun(question, callbacks=[handler])
        await handler.aflush()

Messages (JSON objects, each with ``type`` and a ``seq`` number counting from 0):

* ``{"type": "start", "kind", "name", "run_id", "parent_run_id"}`` for every run
  (tool starts add ``input``);
* ``{"type": "token", "token", "run_id"}`` for every streamed token, in order;
* ``{"type": "agent_action", "tool", "tool_input", "log", "run_id"}``;
* ``{"type": "final_answer", "answer", "run_id"}`` when an agent finishes;
* ``{"type": "end", "kind", "name", "run_id"}`` (model runs that streamed nothing add their
  ``text``, tool runs their ``output``);
* ``{"type": "error", "kind", "name", "run_id", "error_type", "error"}``;
* ``{"type": "done", "ok", "run_id", ...}`` after the outermost run ended (with ``output``
  when it is text, or a LangGraph state's last message text) or failed (with ``error_type`` and ``error``).

Connections:

* an **async** connection (``send`` is a coroutine: ``websockets``' asyncio server or client
  connections; Starlette / FastAPI ``WebSocket`` objects, through ``send_text``): messages
  go through a queue drained by a task on the connection's event loop, in order. The run never waits for the network. Events may come from async runs on
  that loop or from sync runs in other threads (handed over with
  ``loop.call_soon_threadsafe``). ``await handler.aflush()`` (on the loop) or
  ``handler.flush()`` (from another thread) waits until everything queued was sent.
* a **sync** connection (``websockets.sync`` client or server connections): each message is
  sent in the thread that produced the event, in order; in async runs that is a worker
  thread, so the event loop is never blocked.

A closed or broken connection never breaks the run: the first failure is logged once
(warning on ``spanhook.callbacks``), and every message that could not be delivered is
counted in :attr:`failures`.

The ``websockets`` package is only needed by :meth:`connect` / :meth:`aconnect`
(``pip install 'spanhook[websocket]'``); any object with a ``send_text(str)`` or ``send(str)``
method works.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from typing import Any
from uuid import UUID

from spanhook.callbacks._ws_transport import WebSocketTransport, connection_sender
from spanhook.callbacks.logger import render_error, retry_fields
from spanhook.callbacks.tracker import RunInfo, RunTracker

_internal = logging.getLogger("spanhook.callbacks")

MESSAGE_TYPES = frozenset(
    {"start", "token", "agent_action", "final_answer", "end", "error", "done", "retry", "custom"}
)


def _require_websockets() -> Any:
    try:
        import websockets
    except ImportError as e:
        raise ImportError(
            "WebSocketCallbackHandler.connect() needs the 'websockets' package: "
            "pip install 'spanhook[websocket]'"
        ) from e
    return websockets


def _render_output(value: Any) -> str | None:
    """The outermost run's output as text, when it is text."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if isinstance(value.get("output"), str):
            return str(value["output"])
        messages = value.get("messages")  # a LangGraph state: the last message answers
        if isinstance(messages, list) and messages:
            content = getattr(messages[-1], "content", None)
            return content if isinstance(content, str) else None
        if len(value) == 1:
            only = next(iter(value.values()))
            return only if isinstance(only, str) else None
        return None
    gens = getattr(value, "generations", None)
    if isinstance(gens, list):
        return "".join(g.text for per_prompt in gens for g in per_prompt)
    return None


class WebSocketCallbackHandler(RunTracker, WebSocketTransport):
    """Streams one request's events as JSON messages to a WebSocket connection.

    Args:
        connection: a WebSocket connection with ``send(str)`` (async or sync).
        loop: the event loop of an async connection (default: the connection's ``loop``
            attribute, else the loop running when the handler is created).
        events: the message types to send (default: all of :data:`MESSAGE_TYPES`).
        max_pending: async connections only: messages queued beyond this many unsent ones
            are dropped and counted in :attr:`failures` (a stalled client must not grow
            memory without bound).
    """

    def __init__(
        self,
        connection: Any,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        events: Collection[str] | None = None,
        max_pending: int = 10_000,
    ) -> None:
        send = connection_sender(connection)
        if events is not None:
            unknown = set(events) - MESSAGE_TYPES
            if isinstance(events, str) or unknown:
                raise ValueError(
                    f"unknown message types {sorted(unknown) if unknown else events!r}; "
                    f"choose from {sorted(MESSAGE_TYPES)}"
                )
        if not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be an int >= 1, got {max_pending!r}")
        self.events = frozenset(events) if events is not None else MESSAGE_TYPES
        self._setup_transport(connection, send, loop, max_pending)
        super().__init__()

    # -- convenience constructors -----------------------------------------------------------
    @classmethod
    def connect(cls, uri: str, **kwargs: Any) -> WebSocketCallbackHandler:
        """Open a sync ``websockets`` client connection to ``uri``; :meth:`close` closes it."""
        _require_websockets()
        from websockets.sync.client import connect

        connection = connect(uri)
        connection.__enter__()  # what ``with connect(...)`` does; close() exits it
        handler = cls(connection, **kwargs)
        handler._owns_connection = True
        return handler

    @classmethod
    async def aconnect(cls, uri: str, **kwargs: Any) -> WebSocketCallbackHandler:
        """Open an asyncio ``websockets`` client connection; :meth:`aclose` closes it."""
        _require_websockets()
        from websockets.asyncio.client import connect

        handler = cls(await connect(uri), **kwargs)
        handler._owns_connection = True
        return handler

    # -- events -----------------------------------------------------------------------------
    def run_started(self, run: RunInfo) -> None:
        parent = run.parent_run_id
        # the state: whether this is the outermost run of the request (no parent, or a parent
        # outside our scope)
        run.state = parent is None or self.active(parent) is None
        message = {
            "type": "start",
            "kind": run.kind,
            "name": run.name,
            "run_id": str(run.run_id),
            "parent_run_id": str(parent) if parent else None,
        }
        if run.kind == "tool":
            message["input"] = run.inputs
        self._send(message)

    def run_ended(self, run: RunInfo, output: Any, kwargs: dict[str, Any]) -> None:
        extra: dict[str, Any] = {}
        if run.kind in ("llm", "chat_model"):
            if not run.tokens:
                extra["text"] = _render_output(output)
        elif run.kind == "tool":
            # a tool called with a ToolCall (LangGraph's ToolNode) returns a ToolMessage
            content = getattr(output, "content", None) if hasattr(output, "tool_call_id") else None
            extra["output"] = content if isinstance(content, str) else str(output)
        elif run.kind == "retriever":
            extra["documents"] = [getattr(d, "page_content", d) for d in output or []]
        if run.signal is not None:  # paused or redirected by LangGraph: no output
            extra = {"signal": run.signal}
        done = {"output": _render_output(output)} if run.state else {}
        self._finish(run, "end", extra, done)

    def run_failed(self, run: RunInfo, error: BaseException, kwargs: dict[str, Any]) -> None:
        failure = {"error_type": type(error).__qualname__, "error": render_error(error)}
        self._finish(run, "error", failure, failure)

    def _finish(
        self, run: RunInfo, outcome: str, fields: dict[str, Any], done: dict[str, Any]
    ) -> None:
        """Send the run's ``end`` or ``error`` message with ``fields``, then, after the
        outermost run, ``done`` with ``done``."""
        seen = run.state is not None
        kind, name = (run.kind, run.name) if seen else (None, None)
        run_id = str(run.run_id)
        self._send({"type": outcome, "kind": kind, "name": name, "run_id": run_id, **fields})
        if run.state:  # the outermost run
            self._send({"type": "done", "ok": outcome == "end", "run_id": run_id, **done})

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        self.count_token(run_id)
        self._send({"type": "token", "token": token, "run_id": str(run_id)})

    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._send(
            {
                "type": "agent_action",
                "tool": getattr(action, "tool", None),
                "tool_input": getattr(action, "tool_input", None),
                "log": getattr(action, "log", None),
                "run_id": str(run_id),
            }
        )

    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        values = getattr(finish, "return_values", None)
        answer = values.get("output", values) if isinstance(values, Mapping) else values
        self._send({"type": "final_answer", "answer": answer, "run_id": str(run_id)})

    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._send({"type": "retry", **retry_fields(retry_state), "run_id": str(run_id)})

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._send({"type": "custom", "name": name, "data": data, "run_id": str(run_id)})


WebSocketHandler = WebSocketCallbackHandler

__all__ = ["MESSAGE_TYPES", "WebSocketCallbackHandler", "WebSocketHandler"]
