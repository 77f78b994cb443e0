"""Tracing settings from the environment: clear errors for bad values."""

from __future__ import annotations

import pytest

from spanhook.tracing.settings import TracingSettings, get_settings, set_settings


def test_defaults_keep_content_off_and_token_events_off() -> None:
    s = TracingSettings.from_env()
    assert (s.capture_content, s.token_events, s.max_content_length) == (False, False, 4096)


def test_environment_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "TRUE")
    monkeypatch.setenv("SPANHOOK_TOKEN_EVENTS", "1")
    monkeypatch.setenv("SPANHOOK_CONTENT_MAX_LENGTH", "100")
    set_settings(None)
    s = get_settings()
    assert (s.capture_content, s.token_events, s.max_content_length) == (True, True, 100)


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe", "is not a boolean"),
        ("SPANHOOK_CONTENT_MAX_LENGTH", "lots", "is not an integer"),
        ("SPANHOOK_CONTENT_MAX_LENGTH", "3", "must be >= 16"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=f"{var}={value!r} {message}"):
        TracingSettings.from_env()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", True), ("  ", True), (" Off ", False), ("no", False), ("YES", True), ("1", True)],
)
def test_the_sigterm_flag_reads_like_every_boolean_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    from spanhook.tracing import sigterm

    monkeypatch.setenv(sigterm.FLUSH_ON_SIGTERM_ENV, value)
    assert sigterm.enabled(None) is expected  # blank: the default, on
    assert sigterm.enabled(False) is False  # the argument wins over the variable
    monkeypatch.setenv(sigterm.FLUSH_ON_SIGTERM_ENV, "sometimes")
    with pytest.raises(ValueError, match="SPANHOOK_FLUSH_ON_SIGTERM='sometimes' is not a boolean"):
        sigterm.enabled(None)


def test_a_blank_boolean_variable_means_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", " ")
    monkeypatch.setenv("SPANHOOK_TOKEN_EVENTS", "")
    s = TracingSettings.from_env()
    assert (s.capture_content, s.token_events) == (False, False)
