"""Sorting what users pass in ``callbacks=[...]``: classic handlers and OTel consumers.

A ``SpanProcessor`` is used as it is; a ``SpanExporter`` gets one background
``ExportProcessor`` per exporter object (reused across runs). Anything else that is not a
callback handler is a ``TypeError`` naming the offending entry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from spanhook._state import STATE
from spanhook.runtime.dispatch import is_classic_handler
from spanhook.tracing.export import ExportProcessor

_exporter_lock = threading.Lock()
#: Seconds an idle worker of such a processor waits before stopping.
CALLBACK_EXPORTER_IDLE_TIMEOUT = 10.0


def processor_for_exporter(exporter: SpanExporter) -> ExportProcessor:
    """The background processor that feeds ``exporter`` (one per live exporter object)."""
    # weak (``STATE.exporter_processors``): an exporter nobody refers to any more is collected
    # with its processor once the idle worker stopped, so a new exporter per request leaks
    # no thread
    with _exporter_lock:
        proc = STATE.exporter_processors.get(id(exporter))
        if proc is None or proc.exporter is not exporter:
            proc = ExportProcessor(exporter, idle_timeout=CALLBACK_EXPORTER_IDLE_TIMEOUT)
            STATE.exporter_processors[id(exporter)] = proc
        return proc


class Consumers:
    """Classified callbacks: classic handlers and OTel span processors, duplicates removed."""

    __slots__ = ("handlers", "processors")

    def __init__(self, handlers: tuple[Any, ...] = (), processors: tuple[SpanProcessor, ...] = ()):
        self.handlers = handlers
        self.processors = processors

    def __bool__(self) -> bool:
        return bool(self.handlers or self.processors)

    def __repr__(self) -> str:
        return f"Consumers(handlers={list(self.handlers)!r}, processors={list(self.processors)!r})"


EMPTY = Consumers()
_new_consumers = object.__new__

_HANDLER, _PROCESSOR, _EXPORTER, _INVALID = 0, 1, 2, 3
_kind_by_type: dict[type, int] = STATE.consumer_kinds


def _kind_of(item: object) -> int:
    cls = type(item)
    kind = _kind_by_type.get(cls)
    if kind is None:
        if isinstance(item, SpanProcessor):
            kind = _PROCESSOR
        elif isinstance(item, SpanExporter):
            kind = _EXPORTER
        elif is_classic_handler(item):
            kind = _HANDLER
        else:
            kind = _INVALID
        _kind_by_type[cls] = kind
    return kind


def classify(callbacks: object, where: object) -> Consumers:
    """Sort ``callbacks`` into handlers and processors; raise ``TypeError`` on anything else."""
    if callbacks is None:
        return EMPTY
    if type(callbacks) is list and len(callbacks) == 1:  # one handler: the common request
        item = callbacks[0]
        if _kind_by_type.get(type(item)) == _HANDLER:
            one = _new_consumers(Consumers)  # Consumers((item,), ()) without its __init__
            one.handlers, one.processors = (item,), ()
            return one
    if (
        type(callbacks) is not list
        and type(callbacks) is not tuple
        and (isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable))
    ):
        if isinstance(callbacks, Consumers):
            return callbacks
        raise TypeError(
            f"callbacks for {where} must be a list of handlers, got {type(callbacks).__name__}"
            f" {callbacks!r}"
        )
    handlers: list[Any] = []
    processors: list[SpanProcessor] = []
    for i, item in enumerate(callbacks):
        kind = _kind_by_type.get(type(item))
        if kind is None:
            kind = _kind_of(item)
        if kind == _HANDLER:
            if not _holds(handlers, item):
                handlers.append(item)
        elif kind == _PROCESSOR:
            if not _holds(processors, item):
                processors.append(item)
        elif kind == _EXPORTER:
            proc = processor_for_exporter(item)
            if not _holds(processors, proc):
                processors.append(proc)
        else:
            raise TypeError(
                f"callbacks[{i}] for {where} is {item!r} ({type(item).__name__}): expected a "
                "callback handler (an object with on_* methods such as on_chain_start, e.g. a "
                "BaseCallbackHandler) or an OpenTelemetry SpanProcessor or SpanExporter"
            )
    if not handlers and not processors:
        return EMPTY
    return Consumers(tuple(handlers), tuple(processors))


def _holds(items: list[Any] | tuple[Any, ...], obj: object) -> bool:
    """Whether ``obj`` itself (not an equal object) is in ``items``."""
    for item in items:  # noqa: SIM110 - a plain loop: any() with a generator costs more here
        if item is obj:
            return True
    return False


def merge(first: tuple[Any, ...], second: tuple[Any, ...]) -> tuple[Any, ...]:
    """``first`` then what ``second`` adds, keeping the first occurrence of each object."""
    if not second:
        return first
    if not first:
        return second
    out = list(first)
    for item in second:
        if not _holds(out, item):
            out.append(item)
    return tuple(out)
