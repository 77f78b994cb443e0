"""Span and id construction for runs: the hot-path pieces that lean on OTel internals.

Every OTel-private name the runtime uses is here, with the reason. Checked against
opentelemetry-api/sdk 1.45; ``benchmarks/bench_overhead.py`` measures what they save.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextvars import Token
from random import getrandbits
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import ReadableSpan

#: The context key ``trace.set_span_in_context`` uses (OTel-private): a run builds its
#: context in one dict copy, with its span and itself, instead of two ``set_value`` copies.
SPAN_KEY = trace.propagation._SPAN_KEY
#: The context key of the current run.
RUN_KEY = otel_context.create_key("spanhook.run")

#: The contextvar behind OTel's default runtime context (``_RUNTIME_CONTEXT`` and its
#: ``_current_context`` are OTel-private): with it a run reads, attaches and detaches its
#: context in one C call each instead of two Python calls (overhead_breakdown
#: chain_handler: 244.2k -> 241.8k instructions with the inline span name). Any other
#: runtime context (``OTEL_PYTHON_CONTEXT``) keeps OTel's functions.
_runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
_var: Any = (
    getattr(_runtime, "_current_context", None)
    if type(_runtime) is ContextVarsRuntimeContext
    else None
)
get_current: Callable[[], otel_context.Context] = (
    _var.get if _var is not None else otel_context.get_current
)
attach: Callable[[otel_context.Context], Token[otel_context.Context]] = (
    _var.set if _var is not None else otel_context.attach
)
#: Reset to before ``attach``; may raise (then call OTel's ``detach``, which logs it).
reset: Callable[[Token[otel_context.Context]], None] = (
    _var.reset if _var is not None else otel_context.detach
)

_new_uuid = object.__new__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown  # an enum member: looked up once, not per run
_set = object.__setattr__
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_run_id() -> uuid.UUID:
    """A random version-4 UUID, built without ``uuid.uuid4()``'s syscall and validation
    (a run id needs uniqueness, not cryptographic randomness)."""
    u = _new_uuid(uuid.UUID)
    _set(u, "int", (getrandbits(128) & _V4_CLEAR) | _V4_SET)
    _set(u, "is_safe", _UNKNOWN_SAFETY)
    return u


_SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)


def light_span(ctx: otel_context.Context) -> trace.Span:
    """A non-recording span with fresh ids, for runs whose span would reach no one (OTel's
    own early return for unsampled spans)."""
    parent = ctx.get(SPAN_KEY)
    parent_sc = parent.get_span_context() if parent is not None else None  # type: ignore[attr-defined]
    if parent_sc is not None and parent_sc.is_valid:
        trace_id, flags = parent_sc.trace_id, parent_sc.trace_flags
    else:
        trace_id, flags = getrandbits(128) or 1, _SAMPLED
    return trace.NonRecordingSpan(trace.SpanContext(trace_id, getrandbits(64) or 1, False, flags))


def finished_view(span: trace.Span) -> Any:
    """The immutable view of an ended SDK span that processors receive (``_readable_span``
    is SDK-private; what ``Span.end()`` hands its own processors)."""
    readable = getattr(span, "_readable_span", None)
    return readable() if readable is not None else span


def is_sdk_span(span: trace.Span) -> bool:
    return isinstance(span, ReadableSpan)
