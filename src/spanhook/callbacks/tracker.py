"""``RunTracker``: a handler base for the run's life instead of thirteen events.

The 13 start / end / error events of the handler contract become three hooks receiving a
:class:`RunInfo` (kind, name, run and parent ids, OTel trace and span ids, tags, metadata,
timing, the start payload): :meth:`RunTracker.run_started`, :meth:`RunTracker.run_ended`
and :meth:`RunTracker.run_failed`. The tracker keeps the one map of active runs and its
lock. The runtime passes each run to the tracker at its start, so the kind (``agent`` as
well as ``chain``), name and span ids are the run's own; a start event from elsewhere (a
handler called directly, by langchain-core) falls back to what the event says.

An error event carrying LangGraph's control flow (``interrupt()``'s ``GraphInterrupt``, a
``ParentCommand``) is no failure: it reaches :meth:`RunTracker.run_ended` with output
``None`` and :attr:`RunInfo.signal` set.

Hooks are called outside the tracker's lock; a subclass may take ``self._lock`` for state
of its own. Events inside a run (tokens, text, agent actions) stay ordinary handler methods;
``on_llm_new_token`` may call :meth:`RunTracker.count_token` to count a run's tokens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from spanhook.callbacks.base import BaseCallbackHandler
from spanhook.events import EVENTS, LIFECYCLE_EVENTS, START_KINDS, graph_signal
from spanhook.runtime.dispatch import RUN_KWARG


@dataclass
class RunInfo:
    """What a run-tracking handler knows about one run."""

    run_id: UUID
    parent_run_id: UUID | None
    kind: str
    name: str
    #: OTel ids (hex), when the run came from spanhook's runtime with a valid span.
    trace_id: str | None
    span_id: str | None
    tags: list[str]
    metadata: dict[str, Any]
    #: ``time.perf_counter_ns()`` at the start event (``None``: the start was not seen).
    start_ns: int | None
    serialized: Any = None
    #: The start event's payload: inputs, prompts, messages, tool input or query.
    inputs: Any = None
    end_ns: int | None = None
    #: Per-run state of the tracker subclass.
    state: Any = field(default=None, repr=False)
    #: Streamed tokens counted by :meth:`RunTracker.count_token`.
    tokens: int = 0
    #: The LangGraph control-flow signal the run ended with instead of an output
    #: (``GraphInterrupt``: paused for a human; ``ParentCommand``), else ``None``.
    signal: str | None = None

    @property
    def duration_ms(self) -> float | None:
        if self.start_ns is None or self.end_ns is None:
            return None
        return (self.end_ns - self.start_ns) / 1e6


def _valid(hex_id: str) -> str | None:
    return hex_id if hex_id.strip("0") else None


def _name(serialized: Any, kwargs: Mapping[str, Any]) -> str:
    name = kwargs.get("name")
    if not name and isinstance(serialized, Mapping):
        ident = serialized.get("id")
        name = serialized.get("name") or (ident[-1] if isinstance(ident, list) and ident else None)
    return str(name or "<unknown>")


class RunTracker(BaseCallbackHandler):
    """Base of handlers that follow runs from start to end (see the module docstring)."""

    #: Tells the runtime to pass the run itself with start events.
    wants_run = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[UUID, RunInfo] = {}

    # -- the hooks ----------------------------------------------------------------------
    def run_started(self, run: RunInfo) -> None:
        """A run started (``run`` is now in :meth:`active`)."""

    def run_ended(self, run: RunInfo, output: Any, kwargs: dict[str, Any]) -> None:
        """A run ended with ``output`` (its end event's payload; ``kwargs`` its extras)."""

    def run_failed(self, run: RunInfo, error: BaseException, kwargs: dict[str, Any]) -> None:
        """A run failed with ``error``."""

    # -- lookups ------------------------------------------------------------------------
    def active(self, run_id: UUID) -> RunInfo | None:
        """The run ``run_id`` if it started and has not ended."""
        with self._lock:
            return self._runs.get(run_id)

    def active_runs(self) -> list[RunInfo]:
        with self._lock:
            return list(self._runs.values())

    def count_token(self, run_id: UUID) -> int:
        """Count a streamed token of the active run ``run_id`` in its :attr:`RunInfo.tokens`
        (call it from ``on_llm_new_token``): the token's index, ``-1`` if the run is not
        active."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return -1
            run.tokens += 1
            return run.tokens - 1

    # -- the lifecycle events -------------------------------------------------------------
    def _track_start(
        self, event: str, serialized: Any, inputs: Any, kwargs: dict[str, Any]
    ) -> None:
        run = kwargs.pop(RUN_KWARG, None)
        info = RunInfo(
            run_id=kwargs["run_id"],
            parent_run_id=kwargs.get("parent_run_id"),
            kind=run.kind if run is not None else START_KINDS[event],
            name=run.name if run is not None else _name(serialized, kwargs),
            trace_id=_valid(run.trace_id) if run is not None else None,
            span_id=_valid(run.span_id) if run is not None else None,
            tags=list(kwargs.get("tags") or []),
            metadata=dict(kwargs.get("metadata") or {}),
            start_ns=time.perf_counter_ns(),
            serialized=serialized,
            inputs=inputs,
        )
        with self._lock:
            self._runs[info.run_id] = info
        self.run_started(info)

    def _untrack(self, event: str, kwargs: dict[str, Any]) -> RunInfo:
        run_id: UUID = kwargs["run_id"]
        with self._lock:
            info = self._runs.pop(run_id, None)
        if info is None:  # its start was not seen: what the end event says
            info = RunInfo(
                run_id=run_id,
                parent_run_id=kwargs.get("parent_run_id"),
                kind=EVENTS[event].kinds[0],
                name="<unknown>",
                trace_id=None,
                span_id=None,
                tags=list(kwargs.get("tags") or []),
                metadata={},
                start_ns=None,
            )
        info.end_ns = time.perf_counter_ns()
        return info


def _lifecycle_method(event: str) -> Any:
    role = EVENTS[event].role
    if role == "start":

        def start(self: RunTracker, serialized: Any, inputs: Any, /, **kwargs: Any) -> None:
            self._track_start(event, serialized, inputs, kwargs)

        method: Any = start
    elif role == "end":

        def end(self: RunTracker, output: Any, /, **kwargs: Any) -> None:
            self.run_ended(self._untrack(event, kwargs), output, kwargs)

        method = end
    else:

        def error(self: RunTracker, error: BaseException, /, **kwargs: Any) -> None:
            info = self._untrack(event, kwargs)
            if graph_signal(error) is None:
                self.run_failed(info, error, kwargs)
            else:  # LangGraph's control flow passing through: the run did not fail
                info.signal = type(error).__name__
                self.run_ended(info, None, kwargs)

        method = error
    method.__name__ = method.__qualname__ = event
    return method


for _event in LIFECYCLE_EVENTS:
    setattr(RunTracker, _event, _lifecycle_method(_event))
