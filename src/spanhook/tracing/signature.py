"""Which optional keyword arguments a user-implemented method accepts (cached per function)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from spanhook._state import STATE

_cache = STATE.accepts


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes a parameter called ``name`` (or ``**kwargs``)."""
    key = (getattr(fn, "__func__", fn), name)
    hit = _cache.get(key)
    if hit is None:
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            hit = False
        else:
            hit = name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        _cache[key] = hit
    return hit
