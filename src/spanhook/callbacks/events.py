"""Custom events from inside a run (``on_custom_event``)."""

from __future__ import annotations

from typing import Any


def dispatch_custom_event(name: str, data: Any) -> None:
    """Send ``on_custom_event(name, data)`` to the handlers of the enclosing run; its
    ``run_id`` is that run's. Raises ``RuntimeError`` outside any run."""
    from spanhook.tracing.run import dispatch_custom_event as send

    send(name, data)


async def adispatch_custom_event(name: str, data: Any) -> None:
    """Async twin of :func:`dispatch_custom_event`."""
    from spanhook.tracing.run import adispatch_custom_event as send

    await send(name, data)
