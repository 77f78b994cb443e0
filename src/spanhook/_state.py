"""Process-wide mutable state of spanhook, in one place, with one reset.

Module code reads and writes the fields of :data:`STATE`; nothing else in spanhook keeps
mutable module-level state except per-class memo caches (which describe classes, not the
process, and live here too so that :func:`reset` forgets them). Tests and users' test suites
call ``spanhook.testing.reset()``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

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

    def forget_tracer(self) -> None:
        """Forget the cached tracer and recording decision (the global provider changed)."""
        self.recording = None
        self.tracer_for = None
        self.tracer = None


STATE = State()


def reset() -> None:
    """Forget the settings, the private provider and the cached tracer, and every memo."""
    STATE.settings = None
    STATE.private_provider = None
    STATE.forget_tracer()
    STATE.plans.clear()
    STATE.consumer_kinds.clear()
