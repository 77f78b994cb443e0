"""Span and id construction for runs: the hot-path pieces that lean on OTel internals.

Every OTel-private name the runtime uses is here, with the reason. Checked against
opentelemetry-api/sdk 1.45; ``benchmarks/bench_overhead.py`` measures what they save.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from contextvars import Token
from random import getrandbits
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk import version as sdk_version
from opentelemetry.sdk.trace import ReadableSpan, _Span, sampling
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

#: The context key ``trace.set_span_in_context`` uses (OTel-private): a run builds its
#: context in one dict copy, with its span and itself, instead of two ``set_value`` copies.
SPAN_KEY = trace.propagation._SPAN_KEY
#: The context key of the current run.
RUN_KEY = otel_context.create_key("spanhook.run")
#: The context key LLM provider instrumentations (OpenLLMetry's) check to make no span of
#: their own: set inside a model run, so a model call is one LLM span.
SUPPRESS_PROVIDER_SPANS_KEY = "suppress_language_model_instrumentation"

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


#: Span processors whose ``on_start`` reads no attributes. spanhook's own processors say so
#: with a class attribute ``reads_start_attributes = False``.
QUIET_STARTS: set[type] = {BatchSpanProcessor, SimpleSpanProcessor}
#: The SDK's samplers, which decide without reading attributes.
_BLIND_SAMPLERS = (sampling.StaticSampler, sampling.TraceIdRatioBased)
_PLAIN = frozenset((str, bool, int, float))


class _NoProcessors:
    _span_processors = None


#: (tracer, its multi-processor, that one's processors tuple, max attributes or -1 when
#: attributes must go the SDK's way, which parents the lean start serves: _ROOT | _CHILD)
_gate: tuple[Any, Any, Any, int, int] = (None, _NoProcessors, None, -1, 0)


def start_span(
    tracer: trace.Tracer,
    name: str,
    ctx: otel_context.Context,
    kind: trace.SpanKind,
    attributes: dict[str, Any],
    plain: bool = False,
) -> trace.Span:
    """``tracer.start_span(name, ctx, kind, attributes)``, a third cheaper when nothing reads
    the attributes before the span has started (``plain``: the caller vouches that every
    value is a string, number or boolean).

    The SDK cleans every attribute given at start (type checks, copies, a lock: 0.6-1 us per
    attribute, the largest part of a run's cost). A run's attributes are clean by
    construction. When the provider's sampler is one of the SDK's (which decide without
    attributes) and every span processor ignores attributes in ``on_start``, the span starts
    bare and gets them directly in its attribute map (SDK-private ``_attributes._dict``),
    within the span limits. Anything else (a custom sampler, an unknown processor, a value
    limit, a value that is not a string, number or boolean) takes the SDK's own path."""
    gate = _gate
    if gate[0] is not tracer or gate[1]._span_processors is not gate[2]:
        gate = _open_gate(tracer)
    if gate[3] < len(attributes):
        return tracer.start_span(name, ctx, kind, attributes)
    span = _lean_start(tracer, name, ctx, kind, gate[4]) if gate[4] else None
    if span is None:
        span = tracer.start_span(name, ctx, kind)
    bounded = getattr(span, "_attributes", None)
    if bounded is not None:  # (a sampled-out span has none)
        if not plain:
            for value in attributes.values():
                if type(value) not in _PLAIN:
                    span.set_attributes(attributes)
                    return span
        bounded._dict.update(attributes)
    return span


def set_attributes(span: trace.Span, attributes: Mapping[str, Any]) -> None:
    """``span.set_attributes(attributes)`` for values a run built clean (strings, numbers,
    booleans, lists of strings): written straight into an SDK span's attribute map
    (SDK-private ``_attributes``, ``_lock``, ``_end_time``) when no value limit applies and
    they fit in the count limit; otherwise, or on an ended span, the SDK's own way."""
    bounded = getattr(span, "_attributes", None)
    if type(bounded) is BoundedAttributes and bounded.max_value_len is None:
        clean = {}
        for key, value in attributes.items():
            kind = type(value)
            if kind in _PLAIN:
                clean[key] = value
            elif kind is list and all(type(v) is str for v in value):
                clean[key] = tuple(value)  # as the SDK stores a sequence
            else:
                break
        else:
            most = bounded.maxlen
            with span._lock:  # type: ignore[attr-defined]
                store = bounded._dict
                if span._end_time is None and (  # type: ignore[attr-defined]
                    most is None or len(store) + len(clean) <= most
                ):
                    store.update(clean)
                    return
    span.set_attributes(attributes)


def _open_gate(tracer: trace.Tracer) -> tuple[Any, Any, Any, int, int]:
    global _gate
    multi = getattr(tracer, "span_processor", None)
    processors = getattr(multi, "_span_processors", None)
    limit = -1
    limits = getattr(tracer, "_span_limits", None)
    if (
        type(tracer) is SdkTracer
        and limits is not None
        and limits.max_span_attribute_length is None
        and type(processors) is tuple
        and all(_quiet_start(p) for p in processors)
        and _blind(getattr(tracer, "sampler", None))
    ):
        most = limits.max_span_attributes
        limit = 1 << 30 if most is None else most
    lean = _lean_parents(getattr(tracer, "sampler", None)) if limit >= 0 and LEAN_SDK else 0
    _gate = (tracer, multi if processors is not None else _NoProcessors, processors, limit, lean)
    return _gate


def _quiet_start(processor: object) -> bool:
    cls = type(processor)
    return cls in QUIET_STARTS or getattr(cls, "reads_start_attributes", True) is False


def _blind(sampler: object) -> bool:
    if isinstance(sampler, sampling.ParentBased):
        delegates = (
            getattr(sampler, name, None)
            for name in (
                "_root",
                "_remote_parent_sampled",
                "_remote_parent_not_sampled",
                "_local_parent_sampled",
                "_local_parent_not_sampled",
            )
        )
        return type(sampler) in (sampling.ParentBased, sampling.ParentBasedTraceIdRatio) and all(
            _blind(d) for d in delegates
        )
    return type(sampler) in _BLIND_SAMPLERS


_SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)
_SAMPLED_RANDOM = trace.TraceFlags(trace.TraceFlags.SAMPLED | trace.TraceFlags.RANDOM_TRACE_ID)
_RECORD_AND_SAMPLE = sampling.Decision.RECORD_AND_SAMPLE
_SpanContext = trace.SpanContext

#: SDK releases whose ``Tracer.start_span`` :func:`_lean_start` follows step for step (read
#: side by side: 1.44 and 1.45 differ only in formatting; 1.43 and older differ in how
#: they set the random-trace-id flag and count spans). Any other release: the SDK's own.
#: ``tests/test_sdk_versions.py`` runs the conformance tests on 1.44 as well.
LEAN_SDK = sdk_version.__version__.startswith(("1.44.", "1.45."))
_ROOT, _CHILD = 1, 2


def _lean_parents(sampler: object) -> int:
    """Which runs :func:`_lean_start` serves under ``sampler``: roots (``_ROOT``) when a
    parentless span is always recorded and sampled, children of a local sampled span
    (``_CHILD``) when they always are. The SDK's ``ParentBased`` (the default sampler) with
    its default delegates serves both; ``ParentBasedTraceIdRatio`` serves children."""
    if _always(sampler):
        return _ROOT | _CHILD
    if type(sampler) not in (sampling.ParentBased, sampling.ParentBasedTraceIdRatio):
        return 0
    root = _ROOT if _always(getattr(sampler, "_root", None)) else 0
    return root | (_CHILD if _always(getattr(sampler, "_local_parent_sampled", None)) else 0)


def _always(sampler: object) -> bool:
    return (
        type(sampler) is sampling.StaticSampler
        and getattr(sampler, "_decision", None) is _RECORD_AND_SAMPLE
    )


def _lean_start(
    tracer: Any, name: str, ctx: otel_context.Context, kind: trace.SpanKind, serves: int
) -> trace.Span | None:
    """The SDK's ``tracer.start_span(name, ctx, kind)`` for a span its sampler always
    records and samples (``serves``, from :func:`_lean_parents`), in a third of the calls:
    the same ids, flags, trace state, limits, processors and span metrics, without asking
    the sampler (whose answer is known) or building its result. ``None`` for any other
    span (a remote or unsampled parent, a disabled tracer): the caller asks the SDK."""
    if not tracer._tracer_config.is_enabled:
        return None
    parent = ctx.get(SPAN_KEY)
    parent_sc = parent.get_span_context() if parent is not None else None  # type: ignore[attr-defined]
    ids = tracer.id_generator
    if parent_sc is None or (type(parent_sc) is _SpanContext and not parent_sc.is_valid):
        if not serves & _ROOT:
            return None
        parent_sc = None
        trace_id = ids.generate_trace_id()
        flags = _SAMPLED_RANDOM if ids.is_trace_id_random() else _SAMPLED
        state = None
    elif type(parent_sc) is _SpanContext and not parent_sc.is_remote and serves & _CHILD:
        parent_flags = parent_sc.trace_flags
        if not parent_flags.sampled:
            return None
        trace_id = parent_sc.trace_id
        flags = _SAMPLED_RANDOM if parent_flags.random_trace_id else _SAMPLED
        state = parent_sc.trace_state  # what the sampler would return
    else:
        return None
    span = _Span(
        name=name,
        context=_SpanContext(trace_id, ids.generate_span_id(), False, flags, state),
        parent=parent_sc,
        sampler=tracer.sampler,
        resource=tracer.resource,
        span_processor=tracer.span_processor,
        kind=kind,
        instrumentation_info=tracer.instrumentation_info,
        limits=tracer._span_limits,
        instrumentation_scope=tracer._instrumentation_scope,
        record_end_metrics=tracer._tracer_metrics.start_span(parent_sc, _RECORD_AND_SAMPLE),
    )
    span.start(None, ctx)
    return span


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
