"""Moved to :mod:`spanhook.runtime.dispatch` (kept as a re-export)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spanhook.events import EVENTS as _SPECS
from spanhook.events import IGNORE_FLAG
from spanhook.runtime.dispatch import (
    Call,
    adispatch,
    deliver_planned,
    dispatch,
    is_classic_handler,
    token_plan,
)
from spanhook.runtime.loop import run_coroutine_blocking

EVENTS = frozenset(_SPECS)


def sync_targets(handlers: Sequence[object], event: str) -> list[tuple[object, Call]] | None:
    """The former name of :func:`token_plan` (``event`` is ``on_llm_new_token``)."""
    return token_plan(handlers)


def call_targets(
    targets: Sequence[tuple[object, Call]], event: str, kwargs: dict[str, Any]
) -> None:
    """The former name of :func:`deliver_planned`."""
    deliver_planned(targets, kwargs)


__all__ = [
    "EVENTS",
    "IGNORE_FLAG",
    "adispatch",
    "call_targets",
    "dispatch",
    "is_classic_handler",
    "run_coroutine_blocking",
    "sync_targets",
]
