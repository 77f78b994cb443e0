"""Process-wide tracing settings: content capture, truncation, token events.

Read from the environment on first use; ``spanhook.configure()`` overrides them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MAX_LENGTH_ENV = "SPANHOOK_CONTENT_MAX_LENGTH"
TOKEN_EVENTS_ENV = "SPANHOOK_TOKEN_EVENTS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
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

    @classmethod
    def from_env(cls) -> TracingSettings:
        return cls(
            capture_content=env_flag(CAPTURE_ENV),
            max_content_length=env_int(MAX_LENGTH_ENV, 4096, minimum=16),
            token_events=env_flag(TOKEN_EVENTS_ENV),
        )


_settings: TracingSettings | None = None


def get_settings() -> TracingSettings:
    global _settings
    if _settings is None:
        _settings = TracingSettings.from_env()
    return _settings


def set_settings(settings: TracingSettings | None) -> None:
    """Replace the settings (``None``: read the environment again on next use)."""
    global _settings
    _settings = settings
