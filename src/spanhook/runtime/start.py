"""Starting a run: resolve its scope, start its span, build the :class:`Run`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from spanhook.runtime import content, spans
from spanhook.runtime.run import _NEW, Run, RunKind
from spanhook.runtime.scope import NO_REQUEST, ROOT, SCOPED_HANDLERS, Request, RunDefaults, Scope
from spanhook.runtime.scope import derive as derive_scope
from spanhook.runtime.spans import RUN_KEY, SPAN_KEY, light_span, new_run_id
from spanhook.tracing import attributes as attr
from spanhook.tracing import viewers
from spanhook.tracing.provider import get_tracer, recording_tracer

_get_current = spans.get_current  # module aliases: once per run
_Context = otel_context.Context
_start_span = spans.start_span
_new_run = Run.__new__
_span_name = attr.span_name
_MAX_NAME = attr.MAX_NAME_LENGTH
_RUN_KIND, _RUN_ID, _SPAN_KIND = attr.RUN_KIND, attr.RUN_ID, viewers.SPAN_KIND
_SPAN_KINDS = viewers.SPAN_KINDS
_monotonic_ns = time.monotonic_ns
#: A run's empty start/end/error keywords, shared: they are replaced, never updated in place.
_NO_KWARGS: dict[str, Any] = {}


def start_run(
    kind: RunKind,
    owner: RunDefaults,
    request: Request | None,
    *,
    name: str,
    span_name: str,
    start_args: tuple[Any, ...],
    start_kwargs: dict[str, Any] | None = None,
    span_kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
) -> Run:
    """Resolve the scope of a run of ``owner`` and start its span (not yet current)."""
    ctx = _get_current()
    parent: Run | None = ctx.get(RUN_KEY)  # type: ignore[assignment]
    if request is None:
        request = NO_REQUEST
    scope, inherited = derive_scope(
        parent.inherited if parent is not None else ROOT, request, owner, SCOPED_HANDLERS.get()
    )
    run_id = request.run_id or new_run_id()
    if request.run_name:
        name = request.run_name
    span = run_span(
        kind, run_id, span_name, ctx, span_kind, scope.tags, scope.metadata, attributes, scope
    )
    return new_run(
        kind,
        name,
        run_id,
        parent,
        span,
        scope,
        inherited,
        ctx,
        start_args,
        start_kwargs if start_kwargs is not None else {"name": name},
    )


def run_span(
    kind: str,
    run_id: uuid.UUID,
    span_name: str,
    ctx: otel_context.Context,
    span_kind: SpanKind,
    tags: list[str],
    metadata: Mapping[str, Any],
    attributes: Mapping[str, Any] | None,
    scope: Scope,
) -> trace.Span:
    """The span of a run (started, not current): a child of ``ctx``'s span, with the run's
    attributes; a non-recording one when it would reach no one (no recording provider and
    no scoped processor in ``scope``)."""
    tracer = recording_tracer()
    if tracer is None:
        if not scope.processors:
            return light_span(ctx)
        tracer = get_tracer()
    if attributes or tags or metadata:
        span_attrs = content.span_attributes(kind, str(run_id), tags, metadata, attributes)
        plain = False
    else:  # span_attributes() inline (overhead_breakdown chain_handler)
        span_attrs = {_RUN_KIND: kind, _RUN_ID: str(run_id), _SPAN_KIND: _SPAN_KINDS[kind]}
        plain = True
    if type(span_name) is not str or len(span_name) > _MAX_NAME or not span_name.isascii():
        span_name = _span_name(span_name)  # clean: no call (overhead_breakdown chain_handler)
    return _start_span(tracer, span_name, ctx, span_kind, span_attrs, plain)


def new_run(
    kind: str,
    name: str,
    run_id: uuid.UUID,
    parent: Run | None,
    span: trace.Span,
    scope: Scope,
    inherited: Scope,
    ctx: otel_context.Context,
    start_args: tuple[Any, ...] = (),
    start_kwargs: dict[str, Any] = _NO_KWARGS,
) -> Run:
    """The :class:`Run` record of a started span, not entered yet; ``start_args`` and
    ``start_kwargs`` are what handlers get with the start event."""
    run = _new_run(Run)
    run.kind = kind
    run.name = name
    run.run_id = run_id
    run.parent_run_id = parent.run_id if parent is not None else None
    run.span = span
    run.scope = scope
    run.inherited = inherited
    run.start_args = start_args
    run.start_kwargs = start_kwargs
    run.end_kwargs = run.error_kwargs = _NO_KWARGS  # replaced, never updated in place
    run._end_args = (None,)
    run._state = _NEW
    run._token = None
    run.stream = None
    run.start_ns = _monotonic_ns()
    run._ctx = _Context({**ctx, SPAN_KEY: span, RUN_KEY: run})
    return run
