"""Process-wide mutable state of spanhook, in one place, with one reset.

Module code reads and writes the fields of :data:`STATE`: settings, the private provider and
cached tracer, memo caches (per class, per function, per name), the processors made for
exporters passed as callbacks, the handlers' mailboxes, the loop that runs async handlers
for sync runs, and the paused LangGraph runs a resumed run links to. Tests and users' test suites call ``spanhook.testing.reset()``, which calls
:func:`reset`.

Kept elsewhere, each with its own reset: export counters and live export processors
(``tracing/export_registry.py``), ``configure()``'s fan-outs and SIGTERM handler
(``tracing/configure.py``, ``tracing/sigterm.py``), live tail samplers
(``tracing/sampling.py``).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanContext
    from opentelemetry.util.types import AttributeValue

    from spanhook.runtime.workers import SerialWorker
    from spanhook.tracing.export import ExportProcessor
    from spanhook.tracing.settings import TracingSettings


class State:
    """Everything spanhook caches or owns for the whole process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Tracing settings (``None``: read from the environment on next use).
        self.settings: TracingSettings | None = None
        #: spanhook's own TracerProvider, used when the application set none.
        self.private_provider: TracerProvider | None = None
        #: The tracer for runs, cached per global provider.
        self.tracer_for: object = None
        self.tracer: trace.Tracer | None = None
        #: Whether runs record spans: (global provider, private provider, tracer or None).
        self.recording: tuple[object, object, trace.Tracer | None] | None = None
        #: Per-class memo caches: handler dispatch plans and what a callback object is.
        self.plans: dict[type, Any] = {}
        self.consumer_kinds: dict[type, int] = {}
        #: Whether a function accepts a keyword, by (function, name) (``tracing/signature.py``).
        self.accepts: dict[tuple[Any, str], bool] = {}
        #: Whether a parameter or header name holds a secret (``tracing/secrets.py``).
        self.secret_names: dict[str, bool] = {}
        #: Viewer attributes by recorded tags and metadata (``tracing/viewers.py``).
        self.viewer_context: dict[Any, Mapping[str, AttributeValue]] = {}
        #: The processor of each exporter passed in ``callbacks=[...]``, by exporter id; weak,
        #: so an exporter nobody refers to any more is collected with its idle processor.
        self.exporter_processors: weakref.WeakValueDictionary[int, ExportProcessor] = (
            weakref.WeakValueDictionary()
        )
        #: The mailbox of each sync handler called from async runs (``runtime/workers.py``);
        #: handlers that cannot be weakly referenced by object id.
        self.workers: weakref.WeakKeyDictionary[Any, SerialWorker] = weakref.WeakKeyDictionary()
        self.workers_by_id: dict[int, SerialWorker] = {}
        #: The loop (one daemon thread) that runs async handlers' coroutines for sync runs.
        self.handler_loop: asyncio.AbstractEventLoop | None = None
        #: The span of each paused LangGraph run, by (checkpoint namespace, checkpoint id),
        #: for the run that resumes it to link to (``langchain/graph_events.py``, bounded).
        self.paused_graphs: OrderedDict[tuple[tuple[str, ...], str], SpanContext] = OrderedDict()

    def forget_tracer(self) -> None:
        """Forget the cached tracer and recording decision (the global provider changed)."""
        self.recording = None
        self.tracer_for = None
        self.tracer = None


STATE = State()


def reset() -> None:
    """Forget the settings, the private provider, the cached tracer, every memo, the
    exporters' processors, the handlers' mailboxes and the paused LangGraph runs.

    Mailboxes still holding work are drained all the same (the pool keeps them until they
    are empty); the next event gets a fresh one. The handler loop is kept: it holds no
    state between calls, and stopping it could strand a caller still waiting on it."""
    STATE.settings = None
    STATE.private_provider = None
    STATE.forget_tracer()
    for memo in (
        STATE.plans,
        STATE.consumer_kinds,
        STATE.accepts,
        STATE.secret_names,
        STATE.viewer_context,
    ):
        memo.clear()
    STATE.exporter_processors.clear()
    STATE.workers.clear()
    STATE.workers_by_id.clear()
    STATE.paused_graphs.clear()
