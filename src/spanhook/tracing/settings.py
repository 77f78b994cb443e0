"""Tracing settings: content capture, redaction, truncation, token events.

Process-wide ones are read from the environment on first use and ``spanhook.configure()``
overrides them; :func:`capture_content` overrides content capture for one block of code
(a request, a tenant, a trace) and everything it runs, in threads and tasks too.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spanhook._state import STATE

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MAX_LENGTH_ENV = "SPANHOOK_CONTENT_MAX_LENGTH"
TOKEN_EVENTS_ENV = "SPANHOOK_TOKEN_EVENTS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_flag(name: str, default: bool = False) -> bool:
    """The boolean variable ``name`` (``default`` when unset or blank)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean: use true or false")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be >= {minimum}")
    return value


@dataclass
class TracingSettings:
    #: Put prompts, completions, inputs/outputs and tool arguments/results on exported spans.
    capture_content: bool = False
    #: Longest content value recorded on a span, in characters (longer ones are truncated
    #: and marked).
    max_content_length: int = 4096
    #: Record every streamed token as a span event (time to first token and token counts
    #: are always recorded).
    token_events: bool = False
    #: Called as ``redact(attribute_key, value)`` on every content value and metadata value
    #: before it is put on a span; returns what to record instead (``None``: record nothing).
    redact: Callable[[str, Any], Any] | None = None
    #: Metadata entries recorded as attributes of their own; the rest go into one JSON
    #: attribute, so that bulk metadata never makes the SDK evict a span's core attributes.
    max_metadata_attributes: int = 64

    @classmethod
    def from_env(cls) -> TracingSettings:
        return cls(
            capture_content=env_flag(CAPTURE_ENV),
            max_content_length=env_int(MAX_LENGTH_ENV, 4096, minimum=16),
            token_events=env_flag(TOKEN_EVENTS_ENV),
            max_metadata_attributes=metadata_attribute_budget(),
        )


#: Attributes kept free for a run's own ones (ids, kind, GenAI request/response/usage, content).
RESERVED_ATTRIBUTES = 48


def metadata_attribute_budget() -> int:
    """How many metadata entries may be attributes of their own under the SDK's span
    attribute limit (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`` / ``OTEL_ATTRIBUTE_COUNT_LIMIT``,
    128 by default), keeping room for the run's own attributes."""
    from opentelemetry.sdk.trace import SpanLimits

    limit = SpanLimits().max_span_attributes
    if limit is None:
        return 64
    return max(0, min(64, limit - RESERVED_ATTRIBUTES))


def get_settings() -> TracingSettings:
    settings = STATE.settings
    if settings is None:
        settings = STATE.settings = TracingSettings.from_env()
    return settings


def set_settings(settings: TracingSettings | None) -> None:
    """Replace the settings (``None``: read the environment again on next use)."""
    STATE.settings = settings


_capture_override: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "spanhook_capture_content", default=None
)


def content_capture_enabled() -> bool:
    """Whether content goes on spans here: the innermost :func:`capture_content` block's
    choice, else the process-wide setting."""
    override = _capture_override.get()
    if override is not None:
        return override
    settings = STATE.settings  # get_settings(), inline: checked once or twice per run
    return (settings or get_settings()).capture_content


class capture_content:
    """Turn content capture on or off for the runs started inside the block (and the runs
    nested in them, in this thread or task and in those that carry its context), whatever
    the process-wide setting says: e.g. off for a tenant whose data must not be exported."""

    def __init__(self, enabled: bool) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"capture_content() takes True or False, got {enabled!r}")
        self.enabled = enabled
        self._tokens: list[contextvars.Token[bool | None]] = []

    def __enter__(self) -> None:
        self._tokens.append(_capture_override.set(self.enabled))

    def __exit__(self, *exc: object) -> None:
        _capture_override.reset(self._tokens.pop())
