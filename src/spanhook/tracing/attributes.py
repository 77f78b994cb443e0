"""Span attribute names (OpenTelemetry GenAI conventions + ``spanhook.*``) and THE policy
turning the application's values into span attributes.

Every value spanhook puts on a span (content, metadata, tags, names, errors, the redact
hook's results) goes through this module, which never raises: the value is rendered as
valid UTF-8 text or a valid OTel attribute value, secrets masked, at most one size limit
long (``max_content_length``, lowered by ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` /
``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` when set), with a marker where it was cut.
"""

from __future__ import annotations

import logging
import os
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from spanhook.tracing.secrets import MASK, is_secret_name, mask_secrets, mask_text
from spanhook.tracing.settings import get_settings
from spanhook.tracing.values import (
    Marker,
    clean_text,
    key_text,
    more,
    render,
    safe_repr,
    safe_str,
    truncate,
    valid_utf8,
)

__all__ = [
    "MASK",
    "clean_text",
    "is_secret_name",
    "mask_secrets",
    "mask_text",
    "render",
    "safe_repr",
    "safe_str",
    "truncate",
    "valid_utf8",
]

logger = logging.getLogger("spanhook.tracing")

# GenAI semantic conventions
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TTFC = "gen_ai.response.time_to_first_chunk"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"

# spanhook's own
RUN_ID = "spanhook.run_id"
RUN_KIND = "spanhook.run.kind"
RUN_NAME = "spanhook.run.name"
PARENT_RUN_ID = "spanhook.parent_run_id"
TAGS = "spanhook.tags"
METADATA_PREFIX = "spanhook.metadata."
METADATA_OVERFLOW = "spanhook.metadata.overflow"
INPUT = "spanhook.input"
OUTPUT = "spanhook.output"
STREAM_CHUNKS = "spanhook.stream.chunks"
STREAM_CLOSED_EARLY = "spanhook.stream.closed_early"

SPAN_VALUE_LIMIT_ENV = "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"
VALUE_LIMIT_ENV = "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"
#: Most tags recorded on a span (the rest are counted in a marker).
MAX_TAGS = 64
#: Longest span name.
MAX_NAME_LENGTH = 1024
#: Metadata entries past the attribute budget looked at for the overflow attribute.
MAX_OVERFLOW_ENTRIES = 1024
_LIST_MARKER_ROOM = 32
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_sdk_limit_cache: tuple[object, int | None] = (None, None)


def _sdk_limit() -> int | None:
    """The SDK's attribute value length limit from the environment (``None``: unlimited),
    read again whenever spanhook's settings are (re)loaded (``configure()``)."""
    global _sdk_limit_cache
    settings = get_settings()
    cached_for, cached = _sdk_limit_cache
    if cached_for is settings:
        return cached
    limit: int | None = None
    for name in (SPAN_VALUE_LIMIT_ENV, VALUE_LIMIT_ENV):  # the span-specific one wins
        text = os.environ.get(name)
        if text is not None and text.strip():
            try:
                limit = max(1, int(text))
            except ValueError:
                logger.warning("ignoring %s=%r: not an integer", name, text)
                continue
            break
    _sdk_limit_cache = (settings, limit)
    return limit


def value_limit(max_content_length: int) -> int:
    """The one size limit of attribute values: ``max_content_length``, or the SDK's attribute
    value length limit if that is lower (so the SDK never cuts a value silently)."""
    sdk = _sdk_limit()
    return max_content_length if sdk is None else min(max_content_length, sdk)


def to_json(value: Any, limit: int = 1 << 16) -> str:
    """``value`` as text (a string as itself, anything else as JSON, secrets masked), at most
    ``limit`` characters; never raises."""
    return render(value, limit)


def content_value(value: Any, limit: int) -> str:
    """Render content for a span attribute: JSON (secrets masked), at most ``limit`` chars
    (lowered to the SDK's attribute value length limit).

    Structured content (messages, inputs, outputs) is shortened inside its strings, each
    cut string ending in ``...[truncated, N chars]``, so the value stays parseable JSON;
    plain text is cut at the end with the same marker. Terminal colour codes are removed,
    credentials in URLs masked, lone surrogates replaced. Never raises."""
    return render(value, value_limit(limit))


def string_list(items: Sequence[Any], limit: int, max_items: int = MAX_TAGS) -> list[str]:
    """Strings for one array attribute, together at most ``limit`` characters and
    ``max_items`` items; what does not fit is counted in a last ``...[N more]`` item."""
    room = limit - _LIST_MARKER_ROOM if limit > 2 * _LIST_MARKER_ROOM else limit
    out: list[str] = []
    used = 0
    for n, item in enumerate(items):
        remaining = room - used
        if n >= max_items or remaining < min(8, room):
            marker = "..." + more(items, n, "items")
            if used + len(marker) <= limit:
                out.append(marker)
            break
        text = item if type(item) is str else render(item, remaining)
        text = clean_text(text, remaining)
        out.append(text)
        used += len(text) + 1
    return out


def tags_attribute(tags: Sequence[Any], limit: int) -> list[str]:
    """The ``spanhook.tags`` attribute: every tag cleaned, all of them within the limit."""
    try:
        return string_list(tags, value_limit(limit))
    except Exception as e:
        return [f"[unreadable tags: {type(e).__name__}]"]


def _int_value(value: int, limit: int) -> AttributeValue:
    return value if _INT64_MIN <= value <= _INT64_MAX else render(value, limit)


def attribute_value(value: Any, limit: int) -> AttributeValue:
    """``value`` as a valid, bounded OTel attribute value: a string, bool, float or int64 as
    itself (strings cleaned and cut), a list of strings within the limit, anything else
    rendered as text."""
    kind = type(value)
    if kind is str:
        return clean_text(value, limit)
    if kind is bool or kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return _int_value(value, limit)
    if kind in (list, tuple) and value and all(type(v) is str for v in value):
        return string_list(value, limit)
    return render(value, limit)


def bounded_attributes(attributes: Mapping[str, Any], limit: int) -> dict[str, AttributeValue]:
    """``attributes`` (spanhook's own keys) with every value valid and within the limit;
    ``None`` values dropped. Never raises."""
    limit = value_limit(limit)
    out: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if value is not None:
            out[key] = attribute_value(value, limit)
    return out


def span_name(name: object) -> str:
    """A span name: text, cleaned, at most ``MAX_NAME_LENGTH`` characters."""
    if type(name) is str and len(name) <= MAX_NAME_LENGTH and name.isascii():
        return name
    return clean_text(safe_str(name), MAX_NAME_LENGTH)


REDACTION_FAILED = "[redaction failed]"


def redacted(redact: Callable[[str, Any], Any] | None, key: str, value: Any) -> Any:
    """``value`` after the user's redaction hook (``None``: drop it). A hook that raises
    fails closed: the value is replaced by a marker, never recorded as it was. What the hook
    returns goes through the same rendering and size limit as any value."""
    if redact is None:
        return value
    try:
        return redact(key, value)
    except Exception:
        logger.exception(
            "the redact hook failed on %s; recording %r instead", key, REDACTION_FAILED
        )
        return REDACTION_FAILED


#: Characters of content one span carries at most, all its attributes and events together
#: (or 4 x the value limit, if more): a span stays far below the 4 MiB OTLP/gRPC request
#: limit even in 4-byte characters; content past it is replaced by a marker.
SPAN_CONTENT_BUDGET = 256 * 1024
_spent: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def spend(span: object, text: str, limit: int) -> str:
    """``text`` if ``span`` still has room for it in its content budget, else a marker."""
    budget = max(SPAN_CONTENT_BUDGET, 4 * limit)
    try:
        spent = _spent.get(span, 0)
        if spent + len(text) > budget:
            text = f"[content budget of this span spent: {budget} chars]"
        _spent[span] = spent + len(text)
    except TypeError:  # a span that takes no weak reference: no budget kept for it
        pass
    return text


def content_attribute(span: object, key: str, value: Any) -> str | None:
    """The one way content reaches a span: the ``redact`` hook, then rendering (JSON, secrets
    masked, within the value limit, marked) and the span's content budget (``None``: the hook
    dropped it). Never raises."""
    settings = get_settings()
    if settings.redact is not None:
        value = redacted(settings.redact, key, value)
        if value is None:
            return None
    limit = value_limit(settings.max_content_length)
    return spend(span, render(value, limit), limit)


def metadata_attributes(
    metadata: Mapping[Any, Any],
    limit: int,
    redact: Callable[[str, Any], Any] | None = None,
    max_items: int = 64,
) -> dict[str, AttributeValue]:
    """``spanhook.metadata.<key>`` attributes (secrets masked, the ``redact`` hook applied,
    every value and key within the limit); entries past ``max_items`` go together into
    ``spanhook.metadata.overflow`` (JSON). Never raises."""
    limit = value_limit(limit)
    try:
        return _metadata_attributes(metadata, limit, redact, max_items)
    except Exception as e:
        return {METADATA_OVERFLOW: f"[unreadable metadata: {type(e).__name__}]"}


def _metadata_attributes(
    metadata: Mapping[Any, Any],
    limit: int,
    redact: Callable[[str, Any], Any] | None,
    max_items: int,
) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    overflow: dict[str, Any] = {}
    for i, (raw_key, value) in enumerate(metadata.items()):
        if len(overflow) >= MAX_OVERFLOW_ENTRIES:
            overflow["..."] = Marker(more(metadata, i, "entries"))
            break
        plain = type(raw_key) is str and len(raw_key) <= 128 and raw_key.isascii()
        key = raw_key if plain else key_text(raw_key)
        name = METADATA_PREFIX + key
        if is_secret_name(key):
            value = MASK
        elif redact is not None:
            value = redacted(redact, name, value)
            if value is None:
                continue
        if i >= max_items or name in out:
            overflow[key] = value
            continue
        out[name] = attribute_value(value, limit)
    if overflow:
        out[METADATA_OVERFLOW] = render(overflow, limit)
    return out


def primitive(value: Any, limit: int = 4096) -> AttributeValue:
    """``value`` as a bounded OTel attribute value (see :func:`attribute_value`)."""
    return attribute_value(value, value_limit(limit))


def built_content(build: Callable[..., Any], *args: Any) -> Any:
    """``build(*args)``: content shaped for a span (e.g. GenAI messages) from values the app
    handed over; if shaping raises on a hostile value, a marker naming the error instead.
    Never raises."""
    try:
        return build(*args)
    except Exception as e:
        return Marker(f"[content not recordable: {safe_repr(e)}]")


def documents_content(docs: object) -> tuple[int | None, Any]:
    """How many documents a retriever returned (``None``: not a list) and what of them goes
    on the span as content: each document's ``page_content``, an item that is no document as
    itself. Never raises, and never iterates what is not a list or tuple (a generator would
    reach the caller exhausted)."""
    if not isinstance(docs, (list, tuple)):
        return None, Marker(f"[documents as {safe_repr(docs)}]")
    return len(docs), [_page_content(d) for d in docs]


def _page_content(doc: object) -> Any:
    try:
        return doc.page_content  # type: ignore[attr-defined]
    except Exception:
        return doc


def _tail(text: str, limit: int, full: int) -> str:
    """The end of ``text`` (a stack trace ends with what matters), marked if cut (``full``:
    its length before any cut)."""
    if len(text) <= limit and full == len(text):
        return text
    marker = f"[truncated, {full} chars]..."
    return marker[:limit] + text[len(text) - max(0, limit - len(marker)) :]


#: Longest span status description (the exception's type and message; the exception event
#: keeps the message up to the value limit).
MAX_STATUS_DESCRIPTION = 200


def record_error(span: Span, error: BaseException, limit: int) -> None:
    """Record ``error`` on ``span`` as OTel's ``exception`` event, ``error.type`` and ERROR
    status, with its message and stack trace cleaned and bounded (an exception whose
    ``__str__`` raises or whose message holds lone surrogates is recorded too)."""
    limit = value_limit(limit)
    kind = type(error)
    module, qualname = kind.__module__, kind.__qualname__
    message = clean_text(safe_str(error), limit)
    try:
        stack = "".join(traceback.format_exception(kind, error, error.__traceback__))
    except Exception:
        stack = message
    full = len(stack)
    stack = _tail(valid_utf8(mask_text(stack[-(limit + 512) :])), limit, full)
    span.add_event(
        "exception",
        {
            "exception.type": qualname if module in (None, "builtins") else f"{module}.{qualname}",
            "exception.message": message,
            "exception.stacktrace": stack,
            "exception.escaped": "True",
        },
    )
    status = clean_text(f"{kind.__name__}: {message}", min(limit, MAX_STATUS_DESCRIPTION))
    span.set_status(Status(StatusCode.ERROR, status))
    span.set_attribute(ERROR_TYPE, qualname)


#: ``error.type`` of a tool call whose result reports an error (OTel's MCP conventions).
TOOL_ERROR = "tool_error"


def record_tool_error(span: Span, text: object, limit: int) -> None:
    """A tool call that returned an error as its result (a handled ``ToolException``): no
    exception event (nothing escaped), ``error.type`` ``tool_error`` and ERROR status whose
    description is the error text, cleaned and bounded as an exception's message is."""
    message = clean_text(safe_str(text), min(value_limit(limit), MAX_STATUS_DESCRIPTION))
    span.set_status(Status(StatusCode.ERROR, message or TOOL_ERROR))
    span.set_attribute(ERROR_TYPE, TOOL_ERROR)
