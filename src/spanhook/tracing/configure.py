"""``spanhook.configure()``: export runs as OTel traces, set up from the standard variables.

``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` (resource), ``OTEL_TRACES_EXPORTER``
(``otlp``, ``console``, ``none``, or a comma list), ``OTEL_EXPORTER_OTLP_PROTOCOL`` /
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` (``grpc``, ``http/protobuf``),
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_EXPORTER_OTLP_TIMEOUT``, ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``. The
OTel SDK's own environment handling resolves exporter names, protocols and samplers, and
the SDK's exporters read their endpoint, headers and timeout variables themselves.

If the application already set a global SDK ``TracerProvider``, spanhook adds its export
to that provider and never replaces it. Export goes through :class:`ExportProcessor`
(large queue, counted drops, retried failed batches, bounded flush and shutdown, fork-safe).
``SPANHOOK_FLUSH_ON_SIGTERM=false`` (or ``flush_on_sigterm=False``) leaves SIGTERM alone;
by default it flushes first (:mod:`spanhook.tracing.sigterm`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from spanhook._state import STATE
from spanhook.tracing import sigterm
from spanhook.tracing.console import SpanTreeExporter
from spanhook.tracing.export import DEFAULT_BATCH_SIZE, ExportProcessor
from spanhook.tracing.export_registry import flush_all, shutdown_all
from spanhook.tracing.sampling import KeepErrorsSampler, check_ratio
from spanhook.tracing.settings import TracingSettings, get_settings, set_settings
from spanhook.tracing.shutdown import shutdown_together
from spanhook.tracing.viewers import with_project

logger = logging.getLogger("spanhook.configure")

#: Exporter timeout when none is configured: the SDK's 10 s default makes a down collector
#: hold flush and shutdown for ~7 s per batch.
DEFAULT_EXPORT_TIMEOUT = 2.0
_TIMEOUT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")


class _Fanout(SpanProcessor):
    """The one processor spanhook adds to a provider; ``configure()`` swaps its children,
    so configuring twice never exports twice."""

    reads_start_attributes = False  # (runtime.spans.start_span)

    def __init__(self) -> None:
        self.children: tuple[SpanProcessor, ...] = ()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for p in self.children:
            p.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for p in self.children:
            p.on_end(span)

    def shutdown(self) -> None:
        for p in self.children:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        results = [p.force_flush(timeout_millis) for p in self.children]  # flush every one
        return all(results)


_lock = threading.Lock()
_fanouts: dict[int, _Fanout] = {}

_PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_PROTOCOLS = ("grpc", "http/protobuf")


def _check_protocol() -> None:
    """Reject an unsupported OTLP protocol with an error naming the variable."""
    for var in _PROTOCOL_VARS:
        raw = os.environ.get(var)
        if raw and raw.strip():
            if raw.strip() not in _PROTOCOLS:
                raise ValueError(
                    f"{var}={raw!r} is not a supported OTLP protocol: use one of {', '.join(_PROTOCOLS)}"
                )
            return  # the traces variable wins over the generic one


def exporter_names(names: str | Sequence[str] | None = None) -> list[str]:
    """Resolve exporter names the way the OTel SDK does (``otlp`` -> the protocol's exporter)."""
    from opentelemetry.sdk._configuration import _get_exporter_entry_point

    if names is None:
        names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    if isinstance(names, str):
        names = names.split(",")
    out: list[str] = []
    for name in names:
        name = name.strip()
        if not name or name.lower() == "none":
            continue
        if name.startswith("otlp"):
            _check_protocol()
        out.append(name if name == "console" else _get_exporter_entry_point(name, "traces"))
    return out


def make_exporter(name: str) -> SpanExporter:
    """Build one exporter by (resolved) name; ``console`` renders span trees."""
    if name == "console":
        return SpanTreeExporter()
    from opentelemetry.sdk._configuration import _import_exporters

    try:
        classes, _, _ = _import_exporters([name], [], [])
    except RuntimeError:
        from importlib.metadata import entry_points

        known = sorted(
            {"none", *(e.name for e in entry_points(group="opentelemetry_traces_exporter"))}
        )
        raise ValueError(
            f"unknown trace exporter {name!r} (OTEL_TRACES_EXPORTER or configure(exporters=...)): "
            f"use one of {', '.join(known)}"
        ) from None
    cls: Any = classes[name]
    kwargs: dict[str, Any] = {}
    if name.startswith("otlp") and not any(os.environ.get(v) for v in _TIMEOUT_VARS):
        kwargs["timeout"] = DEFAULT_EXPORT_TIMEOUT
    return cls(**kwargs)  # type: ignore[no-any-return]


def _named(name: str) -> tuple[SpanExporter, Callable[[], SpanExporter]]:
    return make_exporter(name), partial(make_exporter, name)


def configure(
    *,
    service_name: str | None = None,
    exporters: str | Sequence[str | SpanExporter] | None = None,
    capture_content: bool | None = None,
    max_content_length: int | None = None,
    token_events: bool | None = None,
    redact: Callable[[str, Any], Any] | None = None,
    sampler: Sampler | None = None,
    keep_ratio: float | None = None,
    max_queue_size: int = 65_536,
    max_export_batch_size: int = DEFAULT_BATCH_SIZE,
    shutdown_timeout: float = 2.0,
    flush_on_sigterm: bool | None = None,
) -> TracerProvider:
    """Set up trace export and content policy; return the provider spanhook's runs use.

    ``exporters``: names (``"otlp"``, ``"console"``, ``"otlp_proto_http"``...) or
    ``SpanExporter`` objects; default ``OTEL_TRACES_EXPORTER`` (``otlp`` when unset).
    ``capture_content``: put prompts, completions, inputs/outputs and tool arguments/results
    on exported spans (default ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``).
    ``redact``: ``redact(attribute_key, value)`` is called on every content and metadata value
    before it goes on a span and returns what to record (``None``: nothing); a hook that
    raises records ``"[redaction failed]"``. Kept by later calls that do not pass one.
    ``keep_ratio``: export whole traces, every one with an error and this share of the
    others, decided when each trace is complete (:class:`KeepErrorsSampler`). The decision
    is per process: a trace that continues in another process (``continue_trace``, an
    incoming ``traceparent``) is decided separately there, so one side can be kept and the
    other dropped (a warning is logged once). For traces that cross processes export
    everything and sample in the Collector's tail-sampling tier instead.
    ``max_queue_size`` / ``max_export_batch_size``: spans held for export / sent per request.
    ``shutdown_timeout``: seconds that shutdown and the SIGTERM flush may take.
    ``flush_on_sigterm``: on SIGTERM, flush queued spans, then run the application's own
    handler or the default action (default ``SPANHOOK_FLUSH_ON_SIGTERM``, on).
    """
    if keep_ratio is not None:
        check_ratio(keep_ratio, "keep_ratio")
    if redact is not None and not callable(redact):
        raise TypeError(f"redact must be a function redact(key, value), got {redact!r}")
    base = TracingSettings.from_env()
    current = get_settings()
    settings = TracingSettings(
        capture_content=base.capture_content if capture_content is None else bool(capture_content),
        max_content_length=current.max_content_length
        if max_content_length is None
        else max_content_length,
        token_events=base.token_events if token_events is None else bool(token_events),
        redact=current.redact if redact is None else redact,
        max_metadata_attributes=base.max_metadata_attributes,
    )
    on_sigterm = sigterm.enabled(flush_on_sigterm)
    if settings.max_content_length < 16:
        raise ValueError(f"max_content_length must be >= 16, got {settings.max_content_length}")

    # Exporters built here by name can be rebuilt in a forked child (own connections).
    built: list[tuple[SpanExporter, Callable[[], SpanExporter] | None]] = []
    if exporters is None or isinstance(exporters, str):
        built = [_named(n) for n in exporter_names(exporters)]
    else:
        for i, e in enumerate(exporters):
            if isinstance(e, SpanExporter):
                built.append((e, None))
            elif isinstance(e, str):
                built += [_named(n) for n in exporter_names(e)]
            else:
                raise TypeError(
                    f"exporters[{i}] is {e!r}: expected an exporter name or a SpanExporter"
                )
    set_settings(settings)  # only once the configuration is known to be valid

    with _lock:
        gp = trace.get_tracer_provider()
        if isinstance(gp, TracerProvider):
            tp = gp
            if sampler is not None:
                logger.warning(
                    "configure(sampler=...) ignored: the application's TracerProvider keeps its sampler"
                )
            if service_name is not None:
                logger.warning(
                    "configure(service_name=...) ignored: the application's TracerProvider keeps its resource"
                )
        else:
            attrs = {SERVICE_NAME: service_name} if service_name else {}
            tp = TracerProvider(
                resource=with_project(Resource.create(attrs)),
                sampler=sampler,
                shutdown_on_exit=False,
            )
            trace.set_tracer_provider(tp)
        fan = _fanouts.get(id(tp))
        if fan is None:
            fan = _Fanout()
            tp.add_span_processor(fan)
            _fanouts[id(tp)] = fan
        old = fan.children
        exports: tuple[SpanProcessor, ...] = tuple(
            ExportProcessor(
                e,
                max_queue_size=max_queue_size,
                max_export_batch_size=max_export_batch_size,
                shutdown_timeout=shutdown_timeout,
                exporter_factory=factory,
            )
            for e, factory in built
        )
        fan.children = (
            (KeepErrorsSampler(exports, keep_ratio),)
            if keep_ratio is not None and exports
            else exports
        )
    shutdown_together(old, shutdown_timeout)
    if on_sigterm:
        sigterm.install(flush_all, shutdown_timeout)
    else:
        sigterm.uninstall()
    STATE.forget_tracer()  # the next run picks up the (possibly new) global provider
    return tp


def force_flush(timeout: float = 5.0) -> bool:
    """Wait, at most ``timeout`` seconds, until every finished span was handed to its exporter.
    Never call this on a request path: it waits for the network."""
    return flush_all(timeout)


def shutdown(timeout: float = 1.5) -> None:
    """Export what can be exported within ``timeout`` seconds, count the rest as dropped."""
    shutdown_all(timeout)


def _reset_for_tests() -> None:
    """Forget the fan-out processors added to providers and put SIGTERM's handler back."""
    with _lock:
        _fanouts.clear()
    sigterm._reset_for_tests()
