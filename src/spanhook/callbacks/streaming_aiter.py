"""``AsyncIteratorCallbackHandler``: the tokens of one request as an async iterator.

Typical use (e.g. a server-sent-events endpoint)::

    handler = AsyncIteratorCallbackHandler()
    task = asyncio.create_task(agent.arun(question, callbacks=[handler]))
    async for token in handler.aiter(task):
        yield token
    answer = await task

Semantics:

* Iteration ends when the outermost run the handler saw ends, not when the first model
  call ends: an agent that calls the model several times streams the tokens of every call.
  (If a request starts several top-level runs one after another, e.g. ``generate()`` with
  several prompts, pass its task to :meth:`aiter` so that iteration lasts until the task
  is done.)
* If the outermost run fails, iteration first yields the tokens produced before the
  failure, then **raises that run's exception** (the same object the request raises).
* No result is lost: every ``on_llm_end`` ``LLMResult`` is kept in :attr:`llm_results`,
  the outermost run's output in :attr:`output`; a model run that produced no tokens (a
  model called without streaming) contributes its whole text as one item, so the iterator
  always carries the text of every model call (``include_non_streamed=False`` to skip).
* Works from async runs (events are handled on the loop, no thread hop) and from sync runs
  executed in another thread (items are handed over thread-safely).
* With ``task=``, iteration also ends when the task is done, and raises the task's
  exception if the task failed before the handler saw any run end (e.g. bad input rejected
  before the first run started): the iterator never hangs on a request that died early.

One handler serves one request; create a new one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from spanhook.callbacks.tracker import RunInfo, RunTracker


class AsyncIteratorCallbackHandler(RunTracker):
    """Collects a request's streamed tokens for :meth:`aiter` (see module docs)."""

    run_inline = True  # events are handled where they happen: on the loop, or in the run's thread

    def __init__(self, *, include_non_streamed: bool = True) -> None:
        self.include_non_streamed = include_non_streamed
        #: Every model result, in the order the model runs ended.
        self.llm_results: list[Any] = []
        #: What the outermost run returned (its ``on_*_end`` payload), once it ended.
        self.output: Any = None
        #: The outermost run's error, if it failed.
        self.error: BaseException | None = None
        super().__init__()
        self._items: deque[str] = deque()
        self._roots: set[UUID] = set()
        self._token_runs: set[UUID] = set()
        self._done = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._iterating = False

    @property
    def done(self) -> bool:
        """Whether the outermost run has ended (or failed)."""
        with self._lock:
            return self._done

    # -- producer side (any thread) ------------------------------------------------------
    def _notify(self) -> None:
        loop, event = self._loop, self._wakeup
        if loop is None or event is None:
            return  # nobody iterates yet: aiter() will find the items
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening
                loop.call_soon_threadsafe(event.set)

    def run_started(self, run: RunInfo) -> None:
        parent = run.parent_run_id
        with self._lock:
            if not self._done and (parent is None or parent not in self._runs):
                self._roots.add(run.run_id)

    def run_ended(self, run: RunInfo, output: Any, kwargs: dict[str, Any]) -> None:
        if run.kind in ("llm", "chat_model"):
            with self._lock:
                self.llm_results.append(output)
                streamed = run.run_id in self._token_runs
                self._token_runs.discard(run.run_id)
                text = ""
                if not streamed and self.include_non_streamed and not self._done:
                    gens = getattr(output, "generations", None) or []
                    text = "".join(g.text for per_prompt in gens for g in per_prompt)
                    if text:
                        self._items.append(text)
            if text:
                self._notify()
        self._finish(run.run_id, output, None)

    def run_failed(self, run: RunInfo, error: BaseException, kwargs: dict[str, Any]) -> None:
        with self._lock:
            self._token_runs.discard(run.run_id)
        self._finish(run.run_id, None, error)

    def _finish(self, run_id: UUID, output: Any, error: BaseException | None) -> None:
        with self._lock:
            if run_id not in self._roots:
                return
            self._roots.discard(run_id)
            if error is not None and self.error is None:
                self.error = error
            elif error is None:
                self.output = output
            if self._roots and error is None:
                return
            self._done = True
        self._notify()

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        if not token:
            return
        with self._lock:
            if self._done:
                return
            self._token_runs.add(run_id)
            self._items.append(token)
        self._notify()

    # -- consumer side -------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[str]:
        return self.aiter()

    async def aiter(self, task: asyncio.Future[Any] | None = None) -> AsyncIterator[str]:
        """Yield the request's tokens until its outermost run ends (see module docs)."""
        if task is not None and not isinstance(task, asyncio.Future):
            raise TypeError(
                f"aiter(task) takes an asyncio Task or Future, got {type(task).__name__}"
            )
        with self._lock:
            if self._iterating:
                raise RuntimeError("AsyncIteratorCallbackHandler.aiter() can be consumed only once")
            self._iterating = True
            self._loop = asyncio.get_running_loop()
            self._wakeup = event = asyncio.Event()
        if task is not None:
            task.add_done_callback(lambda _: event.set())
        while True:
            event.clear()
            with self._lock:
                items = list(self._items)
                self._items.clear()
                done, error = self._done, self.error
            for item in items:
                yield item
            if done:
                if error is not None:
                    raise error
                return
            if task is not None and task.done():
                with self._lock:
                    if self._items:
                        continue  # the task's last tokens arrived meanwhile
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
                return
            await event.wait()


__all__ = ["AsyncIteratorCallbackHandler"]
