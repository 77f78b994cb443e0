"""Which ``TracerProvider`` spanhook's spans go through.

If the application has set a global SDK ``TracerProvider``, spanhook uses it, so its runs
join the application's traces. Otherwise spanhook keeps a private SDK provider (never
installed globally) so that runs still are real spans that scoped exporters, processors
and console output can read. spanhook never replaces a provider the application set.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spanhook import __version__
from spanhook._state import STATE
from spanhook.runtime.spans import RUN_KEY
from spanhook.tracing.foreign_spans import ensure_router
from spanhook.tracing.viewers import with_project


def private_provider() -> TracerProvider:
    """spanhook's own provider, used when the application set none."""
    with STATE.lock:
        if STATE.private_provider is None:
            STATE.private_provider = TracerProvider(
                resource=with_project(Resource.create()), shutdown_on_exit=False
            )
        return STATE.private_provider


def _is_usable(provider: object) -> bool:
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def get_tracer() -> trace.Tracer:
    """The tracer for runs; cheap to call on every run (cached per global provider)."""
    gp = trace.get_tracer_provider()
    if gp is STATE.tracer_for and STATE.tracer is not None:
        return STATE.tracer
    provider = gp if _is_usable(gp) else private_provider()
    if provider is gp:  # spans other code starts inside runs reach the runs' scoped consumers
        ensure_router(provider, RUN_KEY)
    tracer = provider.get_tracer("spanhook", __version__)
    STATE.tracer_for, STATE.tracer = gp, tracer
    return tracer


def recording_tracer() -> trace.Tracer | None:
    """The tracer for runs, or ``None`` when no span would reach anyone: no application
    provider is set and spanhook's private provider has no processor. Runs then get a
    non-recording span (valid ids, nothing recorded), unless a scoped consumer needs it.

    Decided once per global provider (and private-provider state), not per run."""
    gp_raw = getattr(trace, "_TRACER_PROVIDER", _MISSING)
    private = STATE.private_provider
    decision = STATE.recording
    if decision is not None and decision[0] is gp_raw and decision[1] is private:
        return decision[2]
    result = _decide()
    cacheable = gp_raw is not _MISSING and not _private_has_processors()
    STATE.recording = (gp_raw, private, result) if cacheable else None
    return result


_MISSING = object()


def _decide() -> trace.Tracer | None:
    gp = trace.get_tracer_provider()
    tracer = get_tracer()
    if not _is_usable(gp) and not _private_has_processors():
        return None
    return tracer


def _private_has_processors() -> bool:
    private = STATE.private_provider
    if private is None:
        return False
    try:
        return bool(private._active_span_processor._span_processors)
    except AttributeError:  # an SDK without these internals: assume someone listens
        return True
