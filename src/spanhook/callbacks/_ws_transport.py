"""The delivery side of :class:`~spanhook.callbacks.websocket.WebSocketCallbackHandler`:
sending messages in order over a sync connection (in the producing thread) or an async one
(a queue drained by a task on the connection's loop), counting what could not be delivered,
flushing and closing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

_internal = logging.getLogger("spanhook.callbacks")


def connection_sender(connection: Any) -> Callable[[str], Any]:
    """The method that sends one text message on ``connection``."""
    # Starlette / FastAPI WebSockets send text with send_text(); their send() takes ASGI
    # message dicts. websockets connections send text with send().
    send = getattr(connection, "send_text", None)
    if not callable(send):
        send = getattr(connection, "send", None)
    if not callable(send):
        raise TypeError(
            "WebSocketCallbackHandler needs a WebSocket connection with a send_text() or send() "
            f"method (e.g. a websockets or Starlette/FastAPI connection), got {type(connection).__name__}"
        )
    return send  # type: ignore[no-any-return]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class WebSocketTransport:
    """Sends JSON messages on one connection, in order, never raising into the run.

    The handler sets ``events`` (the message types to send) and provides ``_lock``."""

    events: frozenset[str]
    _lock: threading.Lock

    def _setup_transport(
        self,
        connection: Any,
        send: Callable[[str], Any],
        loop: asyncio.AbstractEventLoop | None,
        max_pending: int,
    ) -> None:
        self.connection = connection
        self._send_text: Any = send
        self.max_pending = max_pending
        self.is_async = inspect.iscoroutinefunction(send)
        # Async connections: handle events inline (on the loop in async runs: cheap, no thread
        # hop). Sync connections: let async runs call us from a worker thread, since send()
        # blocks.
        self.run_inline = self.is_async
        if self.is_async:
            if loop is None:
                loop = getattr(connection, "loop", None)
            if not isinstance(loop, asyncio.AbstractEventLoop):
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    raise ValueError(
                        "WebSocketCallbackHandler got an async connection but cannot tell its "
                        "event loop: create the handler on that loop or pass loop="
                    ) from None
        self._loop = loop
        #: Messages handed to the connection successfully.
        self.sent = 0
        #: Messages that could not be delivered (send failed, connection broken, queue full).
        self.failures = 0
        #: The first delivery error.
        self.last_error: BaseException | None = None
        self._broken = False
        self._owns_connection = False
        self._seq = 0
        # async transport state, touched on the loop thread only
        self._queue: asyncio.Queue[str] | None = None
        self._sender: asyncio.Task[None] | None = None

    def _failed(self, error: BaseException | None, count: int = 1) -> None:
        with self._lock:
            self.failures += count
            first = self.last_error is None and error is not None
            if first:
                self.last_error = error
            self._broken = self._broken or error is not None
        if first:
            _internal.warning(
                "WebSocketCallbackHandler could not send to %r (%r); the run goes on, further "
                "undelivered messages are counted in .failures, not logged",
                type(self.connection).__name__,
                error,
            )

    def _send(self, message: dict[str, Any]) -> None:
        if message["type"] not in self.events:
            return
        if self.is_async:
            self._send_async(message)
            return
        with self._lock:  # sync: one sender at a time, in seq order
            message["seq"] = self._seq
            self._seq += 1
            data = json.dumps(message, default=str, ensure_ascii=False)
            if self._broken:
                self.failures += 1
                return
            try:
                self._send_text(data)
                self.sent += 1
                return
            except Exception as e:
                error = e
        self._failed(error)

    def _send_async(self, message: dict[str, Any]) -> None:
        loop = self._loop
        assert loop is not None
        if _running_loop() is loop:
            self._enqueue(message)
            return
        try:
            # FIFO per producing thread; the loop numbers messages in the order it queues them
            loop.call_soon_threadsafe(self._enqueue, message)
        except RuntimeError as e:  # the connection's loop is closed
            self._failed(e)

    def _enqueue(self, message: dict[str, Any]) -> None:
        """On the connection's loop: number ``message``, queue it, make sure a sender runs."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        message["seq"] = self._seq
        self._seq += 1
        if self._queue.qsize() >= self.max_pending:
            self._failed(None)
            return
        self._queue.put_nowait(json.dumps(message, default=str, ensure_ascii=False))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        queue = self._queue
        assert queue is not None
        while not queue.empty():
            data = queue.get_nowait()
            try:
                if self._broken:
                    self._failed(None)
                else:
                    await self._send_text(data)
                    self.sent += 1
            except Exception as e:
                self._failed(e)
            finally:
                queue.task_done()

    async def aflush(self, timeout: float | None = None) -> bool:
        """Wait (on the connection's loop) until every queued message was sent or failed.
        ``True`` if the queue drained within ``timeout`` seconds."""
        if not self.is_async:
            return True
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError(
                "aflush() must be awaited on the connection's event loop; use flush()"
            )
        queue = self._queue
        if queue is None:
            return True
        try:
            await asyncio.wait_for(queue.join(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait from another thread until every queued message was sent or failed."""
        if not self.is_async:
            return True
        loop = self._loop
        assert loop is not None
        if _running_loop() is loop:
            raise RuntimeError("flush() would block the connection's own loop: await aflush()")
        try:
            fut = asyncio.run_coroutine_threadsafe(self.aflush(), loop)
        except RuntimeError:
            return False
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            return False

    def close(self, timeout: float | None = 5.0) -> None:
        """Flush, then close the connection if :meth:`connect` opened it (sync connections)."""
        self.flush(timeout)
        if self._owns_connection and not self.is_async:
            self.connection.__exit__(None, None, None)

    async def aclose(self, timeout: float | None = 5.0) -> None:
        """Flush, then close the connection if :meth:`aconnect` opened it."""
        await self.aflush(timeout)
        if self._owns_connection:
            result = self.connection.close()
            if inspect.isawaitable(result):
                await result
