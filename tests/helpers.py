"""Shared test helpers: a handler that records every event it receives."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from spanhook.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.callbacks.bridge import EVENTS


@dataclass
class Event:
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


def _make_method(event: str) -> Any:
    def method(self: Recorder, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.events.append(Event(self.label, event, args, kwargs))

    method.__name__ = event
    return method


class Recorder(BaseCallbackHandler):
    """Records every event (name, positional args, keyword args), thread-safely."""

    def __init__(self, label: str = "rec") -> None:
        self.label = label
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return [e.event for e in self.events]

    def of(self, event: str) -> list[Event]:
        return [e for e in self.events if e.event == event]

    def starts(self) -> list[Event]:
        return [e for e in self.events if e.event.endswith("_start")]

    def run_ids(self) -> set[UUID]:
        return {e.run_id for e in self.events if "run_id" in e.kwargs}


for _event in EVENTS:
    setattr(Recorder, _event, _make_method(_event))


def _make_async_method(event: str) -> Any:
    async def method(self: AsyncRecorder, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.events.append(Event(self.label, event, args, kwargs))

    method.__name__ = event
    return method


class AsyncRecorder(AsyncCallbackHandler):
    """The async twin of :class:`Recorder`."""

    def __init__(self, label: str = "arec") -> None:
        self.label = label
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return [e.event for e in self.events]


for _event in EVENTS:
    setattr(AsyncRecorder, _event, _make_async_method(_event))
