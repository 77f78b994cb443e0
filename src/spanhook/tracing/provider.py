"""Which ``TracerProvider`` spanhook's spans go through.

If the application has set a global SDK ``TracerProvider``, spanhook uses it, so its runs
join the application's traces. Otherwise spanhook keeps a private SDK provider (never
installed globally) so that runs still are real spans that scoped exporters, processors
and console output can read. spanhook never replaces a provider the application set.
"""

from __future__ import annotations

import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spanhook import __version__

_lock = threading.Lock()
_private: TracerProvider | None = None
_cached_for: object = None
_cached_tracer: trace.Tracer | None = None


def private_provider() -> TracerProvider:
    """spanhook's own provider, used when the application set none."""
    global _private
    with _lock:
        if _private is None:
            _private = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
        return _private


def _is_usable(provider: object) -> bool:
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def get_tracer() -> trace.Tracer:
    """The tracer for runs; cheap to call on every run (cached per global provider)."""
    global _cached_for, _cached_tracer
    gp = trace.get_tracer_provider()
    if gp is _cached_for and _cached_tracer is not None:
        return _cached_tracer
    provider = gp if _is_usable(gp) else private_provider()
    if provider is gp:  # spans other code starts inside runs reach the runs' scoped consumers
        from spanhook.tracing.foreign_spans import ensure_router
        from spanhook.tracing.run import _RUN_KEY

        ensure_router(provider, _RUN_KEY)
    tracer = provider.get_tracer("spanhook", __version__)
    _cached_for, _cached_tracer = gp, tracer
    return tracer


_decision: tuple[object, int, trace.Tracer | None] | None = None


def recording_tracer() -> trace.Tracer | None:
    """The tracer for runs, or ``None`` when no span would reach anyone: no application
    provider is set and spanhook's private provider has no processor. Runs then get a
    non-recording span (valid ids, nothing recorded), unless a scoped consumer needs it.

    Decided once per global provider (and private-provider state), not per run."""
    global _decision
    gp_raw = getattr(trace, "_TRACER_PROVIDER", _MISSING)
    state = id(_private) if _private is not None else 0
    decision = _decision
    if (
        decision is not None
        and decision[0] is gp_raw
        and decision[1] == state
        and gp_raw is not _MISSING
    ):
        return decision[2]
    result = _decide()
    _decision = None if _private_has_processors() else (gp_raw, state, result)
    return result


_MISSING = object()


def _decide() -> trace.Tracer | None:
    gp = trace.get_tracer_provider()
    tracer = _cached_tracer if gp is _cached_for and _cached_tracer is not None else get_tracer()
    if not _is_usable(gp) and not _private_has_processors():
        return None
    return tracer


def _private_has_processors() -> bool:
    private = _private
    if private is None:
        return False
    try:
        return bool(private._active_span_processor._span_processors)
    except AttributeError:  # an SDK without these internals: assume someone listens
        return True


def reset_for_tests() -> None:
    """Forget the cached tracer (and the private provider, which is rebuilt on next use)."""
    global _cached_for, _cached_tracer, _decision
    _decision = None
    _cached_for = None
    _cached_tracer = None
