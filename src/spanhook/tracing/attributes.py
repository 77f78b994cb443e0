"""Span attribute names (OpenTelemetry GenAI conventions + ``spanhook.*``), content
recording under the capture policy, truncation and secret masking."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from spanhook._color import ANSI_ESCAPE

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

_SECRET_NAME = re.compile(
    r"(api[_-]?key|apikey|secret|password|passwd|authorization|auth[_-]?token|access[_-]?token|"
    r"bearer|credential|private[_-]?key|^token$|_token$|cookie)",
    re.IGNORECASE,
)
MASK = "***"
#: Terminal colour codes (verbose output colours prompts) never go onto spans.


_secret_names: dict[str, bool] = {}


def is_secret_name(name: str) -> bool:
    """Whether a parameter or header name holds a secret (``api_key``, ``Authorization``...)."""
    known = _secret_names.get(name)
    if known is None:
        lowered = name.lower()
        if lowered in ("max_tokens", "max_completion_tokens", "max_new_tokens", "tokens"):
            known = False
        else:
            known = _SECRET_NAME.search(name) is not None
        if len(_secret_names) < 4096:
            _secret_names[name] = known
    return known


_LEAVES = (str, int, float, bool, type(None))


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` with every secret-named mapping entry replaced by ``***``."""
    if type(value) in _LEAVES:
        return value
    if type(value) is list and all(type(v) in _LEAVES for v in value):
        return list(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and is_secret_name(k) else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_secrets(v) for v in value)
    return value


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how long it was."""
    if len(text) <= limit:
        return text
    marker = f"...[truncated, {len(text)} chars]"
    return text[: max(0, limit - len(marker))] + marker


def _default(o: Any) -> Any:
    dump = getattr(o, "model_dump", None)
    if callable(dump):
        return dump()
    return repr(o)


def to_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(mask_secrets(value), default=_default, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _shorten_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        return truncate(value, cap)
    if isinstance(value, dict):
        return {k: _shorten_strings(v, cap) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten_strings(v, cap) for v in value]
    return value


def _longest_string(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_string(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((_longest_string(v) for v in value), default=0)
    return 0


def _fit_json(text: str, limit: int) -> str | None:
    """``text`` (JSON) with its strings cut just enough to fit ``limit``, still valid JSON;
    ``None`` if even that does not fit."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    lo, hi, best = 0, _longest_string(data), None
    while lo <= hi:  # the largest per-string cap that fits
        cap = (lo + hi) // 2
        candidate = json.dumps(_shorten_strings(data, cap), ensure_ascii=False)
        if len(candidate) <= limit:
            best, lo = candidate, cap + 1
        else:
            hi = cap - 1
    return best


def content_value(value: Any, limit: int) -> str:
    """Render content for a span attribute: JSON (secrets masked), at most ``limit`` chars.

    Structured content (messages, inputs, outputs) is shortened inside its strings, each
    cut string ending in ``...[truncated, N chars]``, so the value stays parseable JSON;
    plain text is cut at the end with the same marker. Terminal colour codes are removed."""
    text = ANSI_ESCAPE.sub("", to_json(value))
    if len(text) <= limit or isinstance(value, str):
        return truncate(text, limit)
    return _fit_json(text, limit) or truncate(text, limit)


def primitive(value: Any) -> AttributeValue | None:
    """``value`` as an OTel attribute value, or ``None`` if it is not one."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


REDACTION_FAILED = "[redaction failed]"


def redacted(redact: Callable[[str, Any], Any] | None, key: str, value: Any) -> Any:
    """``value`` after the user's redaction hook (``None``: drop it). A hook that raises
    fails closed: the value is replaced by a marker, never recorded as it was."""
    if redact is None:
        return value
    try:
        return redact(key, value)
    except Exception:
        logger.exception(
            "the redact hook failed on %s; recording %r instead", key, REDACTION_FAILED
        )
        return REDACTION_FAILED


def metadata_attributes(
    metadata: Mapping[str, Any],
    limit: int,
    redact: Callable[[str, Any], Any] | None = None,
    max_items: int = 64,
) -> dict[str, AttributeValue]:
    """``spanhook.metadata.<key>`` attributes (secrets masked, the ``redact`` hook applied);
    entries past ``max_items`` go together into ``spanhook.metadata.overflow`` (JSON)."""
    out: dict[str, AttributeValue] = {}
    overflow: dict[str, Any] = {}
    for i, (key, value) in enumerate(metadata.items()):
        name = METADATA_PREFIX + str(key)
        if is_secret_name(str(key)):
            value = MASK
        elif redact is not None:
            value = redacted(redact, name, value)
            if value is None:
                continue
        if i >= max_items:
            overflow[str(key)] = value
            continue
        prim = primitive(value)
        out[name] = prim if prim is not None else content_value(value, limit)
    if overflow:
        out[METADATA_OVERFLOW] = content_value(overflow, limit)
    return out
