"""Trace context across processes: W3C ``traceparent`` / ``tracestate`` and ``baggage``.

The calling side puts the current run's span context into outgoing request headers::

    headers = spanhook.inject_headers({"Content-Type": "application/json"})
    urllib.request.urlopen(urllib.request.Request(url, data, headers=headers))

The serving side continues the caller's trace, so its runs become children of the
caller's span (a remote parent) and share its trace id::

    with spanhook.continue_trace(request.headers):
        chain.run(question)

Both use the OpenTelemetry global propagator (``OTEL_PROPAGATORS``, by default W3C trace
context + baggage), so they interoperate with any OTel-instrumented client or server.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.context import Context

from spanhook.runtime.spans import RUN_KEY as _RUN_KEY
from spanhook.runtime.spans import SPAN_KEY as _SPAN_KEY

__all__ = ["continue_trace", "extract_context", "inject_headers"]


def inject_headers(
    headers: dict[str, str] | None = None,
    *,
    baggage: Mapping[str, str] | None = None,
    context: Context | None = None,
) -> dict[str, str]:
    """Add the trace context of the current run (``traceparent``, ``tracestate``) and the
    current baggage to ``headers`` (changed in place and returned; a new dict if ``None``).

    ``baggage``: extra baggage entries to send along (e.g. a user or session id the remote
    side should see). ``context``: inject from this OTel context instead of the current one.
    Outside any run (and any span) there is no trace context to send: only baggage is added.
    """
    if headers is None:
        headers = {}
    elif not isinstance(headers, dict):
        raise TypeError(
            f"inject_headers(headers=...) takes a dict of header strings, got {type(headers).__name__}"
        )
    ctx = otel_context.get_current() if context is None else context
    if baggage:
        for key, value in baggage.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"baggage entries must be strings, got {key!r}: {value!r}")
            ctx = otel_baggage.set_baggage(key, value, context=ctx)
    propagate.inject(headers, context=ctx)
    return headers


def _header_dict(headers: Any) -> dict[str, str]:
    """Header names lower-cased (HTTP header names are case-insensitive)."""
    items = getattr(headers, "items", None)
    if not callable(items):
        raise TypeError(
            f"expected request headers (a mapping of names to values), got {type(headers).__name__}"
        )
    out: dict[str, str] = {}
    for key, value in items():
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(key, str) and isinstance(value, str):
            out[key.lower()] = value
    return out


def extract_context(headers: Mapping[str, str] | Any, context: Context | None = None) -> Context:
    """The OTel context a server should run in to continue the caller's trace.

    ``headers``: the incoming request's headers (a dict, ``http.server``'s
    ``self.headers``, a framework's header mapping; names are matched case-insensitively).
    Runs started in the returned context are children of the caller's span. Runs and
    spans of this process that are current now are *not* their parents: the remote caller
    is. Headers without a valid ``traceparent`` give a context whose runs start a new trace.
    """
    carrier = _header_dict(headers)
    base = otel_context.get_current() if context is None else context
    if base.get(_RUN_KEY) is not None or base.get(_SPAN_KEY) is not None:
        base = Context({k: v for k, v in base.items() if k not in (_RUN_KEY, _SPAN_KEY)})
    return propagate.extract(carrier, context=base)


@contextmanager
def continue_trace(headers: Mapping[str, str] | Any) -> Iterator[Context]:
    """Make the caller's trace (and baggage) current for the block: runs started inside
    are children of the remote span. Detached again on every exit path."""
    ctx = extract_context(headers)
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)
