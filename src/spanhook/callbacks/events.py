"""Custom events from inside a run (``on_custom_event``)."""

from __future__ import annotations

from typing import Any

from spanhook.runtime.run import Run, current_run


def _enclosing(what: str, name: str) -> Run:
    run = current_run()
    if run is None:
        raise RuntimeError(
            f"{what}({name!r}) was called outside any run: custom events "
            "belong to the run that emits them"
        )
    return run


def dispatch_custom_event(name: str, data: Any) -> None:
    """Send ``on_custom_event(name, data)`` to the handlers of the enclosing run; its
    ``run_id`` is that run's. Raises ``RuntimeError`` outside any run."""
    _enclosing("dispatch_custom_event", name).on_custom_event(name, data)


async def adispatch_custom_event(name: str, data: Any) -> None:
    """Async twin of :func:`dispatch_custom_event`."""
    await _enclosing("adispatch_custom_event", name).aon_custom_event(name, data)
