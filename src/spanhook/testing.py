"""Helpers for testing code that uses spanhook: a handler recording every event, and one
reset of spanhook's process-wide state.

>>> rec = Recorder()
>>> chain.invoke({"x": 1}, config={"callbacks": [rec]})
>>> rec.names()  # ['on_chain_start', 'on_chain_end']
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.util._once import Once

from spanhook import _state
from spanhook.callbacks.base import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.events import EVENTS
from spanhook.tracing import configure, export_registry, sampling


def reset(*, otel_globals: bool = True) -> None:
    """Forget spanhook's process-wide state: settings (read from the environment again),
    the private provider, cached tracers, memo caches, the handlers' mailboxes,
    ``configure()``'s exporters, and every live export processor (shut down at once, its
    queue dropped) with the export counters.

    With ``otel_globals`` (the default) OTel's own global ``TracerProvider`` is unset too,
    so that the next test may set one (OTel allows setting it only once per process; this
    uses its private globals, checked against opentelemetry-api 1.45).
    """
    if otel_globals:
        trace._TRACER_PROVIDER = None
        trace._TRACER_PROVIDER_SET_ONCE = Once()
    _state.reset()
    configure._reset_for_tests()
    sampling._reset_for_tests()
    export_registry._reset_for_tests()


@dataclass
class Event:
    """One event a :class:`Recorder` received."""

    handler: str
    event: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def run_id(self) -> UUID:
        return self.kwargs["run_id"]  # type: ignore[no-any-return]

    @property
    def parent_run_id(self) -> UUID | None:
        return self.kwargs.get("parent_run_id")

    @property
    def name(self) -> str | None:
        if self.kwargs.get("name"):
            return str(self.kwargs["name"])
        if self.args and isinstance(self.args[0], dict):
            return self.args[0].get("name")
        return None


class _Recording:
    def __init__(self, label: str) -> None:
        self.label = label
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def _record(self, event: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(Event(self.label, event, args, kwargs))

    def names(self) -> list[str]:
        return [e.event for e in self.events]

    def of(self, event: str) -> list[Event]:
        return [e for e in self.events if e.event == event]

    def starts(self) -> list[Event]:
        return [e for e in self.events if e.event.endswith("_start")]

    def run_ids(self) -> set[UUID]:
        return {e.run_id for e in self.events if "run_id" in e.kwargs}


class Recorder(_Recording, BaseCallbackHandler):
    """Records every event of the vocabulary (name, positional and keyword arguments),
    thread-safely."""

    def __init__(self, label: str = "rec") -> None:
        _Recording.__init__(self, label)


class AsyncRecorder(_Recording, AsyncCallbackHandler):
    """The async twin of :class:`Recorder` (its events are coroutines)."""

    def __init__(self, label: str = "arec") -> None:
        _Recording.__init__(self, label)


def _sync_method(event: str) -> Any:
    def method(self: Recorder, *args: Any, **kwargs: Any) -> None:
        self._record(event, args, kwargs)

    method.__name__ = event
    return method


def _async_method(event: str) -> Any:
    async def method(self: AsyncRecorder, *args: Any, **kwargs: Any) -> None:
        self._record(event, args, kwargs)

    method.__name__ = event
    return method


for _event in EVENTS:
    setattr(Recorder, _event, _sync_method(_event))
    setattr(AsyncRecorder, _event, _async_method(_event))
