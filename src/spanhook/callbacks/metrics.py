"""``GenAIMetrics``: finished runs as OpenTelemetry metrics, named as the GenAI semantic
conventions name them.

Give one to a monitor (``MonitorHandler(metrics=GenAIMetrics())``) and every run the
monitor measures is also recorded through the OTel metrics API, on the global
``MeterProvider`` unless you pass one. The application decides where the metrics go by
configuring the SDK (console, OTLP to a Collector, Prometheus, ...); with no SDK set up the
API is a no-op and recording costs next to nothing.

Instruments:

* ``gen_ai.client.operation.duration`` (histogram, ``s``): every run that is a GenAI
  operation: model calls (``chat``, ``text_completion``), tool calls (``execute_tool``),
  agent runs (``invoke_agent``), retrievals (``retrieval``). Attributes
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``server.address``, ``server.port`` when known, ``error.type``
  on failure, ``gen_ai.tool.name`` / ``gen_ai.agent.name`` for tools and agents.
* ``gen_ai.client.token.usage`` (histogram, ``{token}``): model calls that report usage,
  one measurement per ``gen_ai.token.type`` (``input``, ``output``), with the model
  call's attributes (without ``error.type``).
* ``spanhook.run.duration`` (histogram, ``s``): every run, chains included, with
  ``spanhook.run.kind``, ``spanhook.run.name`` and ``error.type`` on failure: the same
  grouping as the monitor's summary.

The attributes are read from the run's span while it is recording (exactly what the trace
shows); when the span records nothing (no tracing set up, or the trace was sampled out),
from what the handler events carry (run kind, invocation parameters). Metrics therefore
count every run, sampled or not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opentelemetry import metrics

from spanhook.runtime.run import current_run
from spanhook.tracing import attributes as attr

if TYPE_CHECKING:
    from spanhook.callbacks.monitor import RunRecord

_internal = logging.getLogger("spanhook.callbacks")

OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"
RUN_DURATION = "spanhook.run.duration"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"

#: Bucket boundaries the GenAI semantic conventions advise for the two client metrics.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)  # fmt: skip
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)  # fmt: skip

#: ``gen_ai.operation.name`` of each run kind when its span does not say.
KIND_OPERATIONS: dict[str, str] = {
    "llm": "text_completion",
    "chat_model": "chat",
    "tool": "execute_tool",
    "agent": "invoke_agent",
    "retriever": "retrieval",
}
_MODEL_KINDS = frozenset({"llm", "chat_model"})
#: Span attributes copied onto the GenAI measurements.
_SPAN_KEYS = (
    attr.GEN_AI_OPERATION_NAME,
    attr.GEN_AI_PROVIDER_NAME,
    attr.GEN_AI_REQUEST_MODEL,
    attr.GEN_AI_RESPONSE_MODEL,
    attr.SERVER_ADDRESS,
    attr.SERVER_PORT,
    attr.GEN_AI_TOOL_NAME,
    attr.GEN_AI_AGENT_NAME,
)


def _span_attributes(run_id: UUID) -> Mapping[str, Any] | None:
    """The GenAI attributes of the current run's span, if it is ``run_id`` and records."""
    run = current_run()
    if run is None or run.run_id != run_id or not run.span.is_recording():
        return None
    values = getattr(run.span, "attributes", None)
    if not isinstance(values, Mapping):
        return None
    return {k: values[k] for k in _SPAN_KEYS if values.get(k) is not None}


def _fallback_attributes(kind: str, name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What the start event itself tells about a GenAI operation."""
    out: dict[str, Any] = {attr.GEN_AI_OPERATION_NAME: KIND_OPERATIONS[kind]}
    if kind in _MODEL_KINDS:
        params = kwargs.get("invocation_params")
        params = params if isinstance(params, Mapping) else {}
        model = params.get("model") or params.get("model_name")
        if isinstance(model, str) and model:
            out[attr.GEN_AI_REQUEST_MODEL] = model
        llm_type = str(params.get("_type") or "")
        serialized = kwargs.get("serialized")
        path = serialized.get("id") if isinstance(serialized, Mapping) else None
        from_openai = llm_type.startswith("openai") or (isinstance(path, list) and "openai" in path)
        out[attr.GEN_AI_PROVIDER_NAME] = "openai" if from_openai else "spanhook"
    elif kind == "tool":
        out[attr.GEN_AI_TOOL_NAME] = name
    elif kind == "agent":
        out[attr.GEN_AI_AGENT_NAME] = name
    return out


class GenAIMetrics:
    """Records finished runs on OTel instruments (see the module docstring).

    Args:
        meter_provider: where the instruments come from (default: the global one, looked
            up when this object is created, so set up the SDK first).
        run_durations: also record ``spanhook.run.duration`` for every run.
    """

    def __init__(
        self, meter_provider: metrics.MeterProvider | None = None, *, run_durations: bool = True
    ) -> None:
        from spanhook import __version__

        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("spanhook", __version__)
        self.operation_duration = meter.create_histogram(
            OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.run_duration = (
            meter.create_histogram(
                RUN_DURATION,
                unit="s",
                description="Duration of spanhook runs, per run kind and name.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
            if run_durations
            else None
        )

    def started(self, kind: str, name: str, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """Call from a run's start event: the run's GenAI attributes (``None``: not GenAI).

        Never raises: a failure is logged and the run is recorded without them."""
        if kind not in KIND_OPERATIONS:
            return None
        try:
            found = _span_attributes(kwargs["run_id"])
            return dict(found) if found else _fallback_attributes(kind, name, kwargs)
        except Exception:
            _internal.exception("GenAIMetrics could not read the attributes of a %s run", kind)
            return None

    def finished(self, record: RunRecord, started: dict[str, Any] | None) -> None:
        """Call from a run's end or error event with what :meth:`started` returned.

        Never raises: a failure is logged and the run goes on."""
        try:
            self._record(record, started)
        except Exception:
            _internal.exception("GenAIMetrics could not record run %s", record.run_id)

    def _record(self, record: RunRecord, started: dict[str, Any] | None) -> None:
        error = {attr.ERROR_TYPE: record.error_type} if record.error_type else {}
        if self.run_duration is not None:
            self.run_duration.record(
                record.duration_s,
                {attr.RUN_KIND: record.kind, attr.RUN_NAME: record.name, **error},
            )
        if started is None:
            return
        # The response model and server address are set on the span as the call ends.
        late = _span_attributes(record.run_id)
        attributes = {**started, **late} if late else started
        self.operation_duration.record(record.duration_s, {**attributes, **error})
        if record.kind in _MODEL_KINDS and (record.prompt_tokens or record.completion_tokens):
            for token_type, count in (
                ("input", record.prompt_tokens),
                ("output", record.completion_tokens),
            ):
                self.token_usage.record(count, {**attributes, GEN_AI_TOKEN_TYPE: token_type})


__all__ = [
    "DURATION_BUCKETS",
    "KIND_OPERATIONS",
    "OPERATION_DURATION",
    "RUN_DURATION",
    "TOKEN_BUCKETS",
    "TOKEN_USAGE",
    "GenAIMetrics",
]
