"""Model runs in the shape of the OpenTelemetry GenAI semantic conventions: the request and
response attributes of a model span, and messages
(``gen_ai.input.messages`` / ``gen_ai.output.messages``): a ``role`` and ``parts``: ``text``,
``tool_call`` (id, name, arguments) for an assistant turn that calls tools,
``tool_call_response`` (id, response) for a tool's answer; output messages add
``finish_reason``."""

from __future__ import annotations

from typing import Any

from spanhook.schema.outputs import LLMResult
from spanhook.tracing import attributes as attr

_ROLES = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant", "tool": "tool"}

#: Provider finish reasons that have a name of their own in the conventions.
_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}


def text_message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def _content_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as parts: a string is one text part; a list of content blocks
    (langchain-core's multimodal and provider messages) gives a text part per text block,
    keeps every other block that names its ``type`` as it is, and makes the rest text."""
    if not isinstance(content, list):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "content": block})
        elif isinstance(block, dict) and block.get("type") == "text" and "text" in block:
            parts.append({"type": "text", "content": block["text"]})
        elif isinstance(block, dict) and isinstance(block.get("type"), str):
            parts.append(block)
        else:
            parts.append({"type": "text", "content": block})
    return parts


def input_message(message: Any) -> dict[str, Any]:
    """One chat message (spanhook's or langchain-core's) as an input message."""
    kind = getattr(message, "type", None)
    role = _ROLES.get(kind) if isinstance(kind, str) else None
    role = role or getattr(message, "role", None) or kind or "user"
    content = getattr(message, "content", message)
    if kind == "tool":
        call_id = getattr(message, "tool_call_id", None)
        part = {"type": "tool_call_response", "id": call_id, "response": content}
        return {"role": role, "parts": [part]}
    calls = getattr(message, "tool_calls", None) or []
    parts = _content_parts(content) if content or not calls else []
    parts.extend(
        {"type": "tool_call", "id": c.get("id"), "name": c.get("name"), "arguments": c.get("args")}
        for c in calls
        if isinstance(c, dict)
    )
    return {"role": role, "parts": parts}


def finish_reason(generation: Any) -> str | None:
    """The provider's finish reason of a generation: ``generation_info``, else the message's
    ``response_metadata`` (``finish_reason``, or Anthropic's ``stop_reason``)."""
    info = getattr(generation, "generation_info", None) or {}
    meta = getattr(getattr(generation, "message", None), "response_metadata", None) or {}
    reason = info.get("finish_reason") or meta.get("finish_reason") or meta.get("stop_reason")
    return str(reason) if reason else None


def output_message(generation: Any) -> dict[str, Any]:
    """One generation (text, or a chat message that may call tools) as an output message."""
    message = getattr(generation, "message", None)
    out = (
        input_message(message)
        if message is not None
        else text_message("assistant", getattr(generation, "text", ""))
    )
    out["role"] = "assistant"
    calls = any(p.get("type") == "tool_call" for p in out["parts"])
    reason = finish_reason(generation) or ("tool_calls" if calls else "stop")
    out["finish_reason"] = _FINISH_REASONS.get(reason, reason)
    return out


def request_attributes(
    operation: str, provider: str, model: str, params: dict[str, Any]
) -> dict[str, Any]:
    """A model span's request attributes (``temperature`` / ``max_tokens`` when numbers)."""
    out: dict[str, Any] = {
        attr.GEN_AI_OPERATION_NAME: operation,
        attr.GEN_AI_PROVIDER_NAME: provider,
        attr.GEN_AI_REQUEST_MODEL: model,
    }
    for key, name in (
        ("temperature", attr.GEN_AI_REQUEST_TEMPERATURE),
        ("max_tokens", attr.GEN_AI_REQUEST_MAX_TOKENS),
    ):
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out


def response_attributes(result: LLMResult, model: str, streamed: bool) -> dict[str, Any]:
    """A model span's response attributes: model, id, token usage (from ``token_usage`` or
    the message's ``usage_metadata``), finish reasons (``None`` values are left out)."""
    output = result.llm_output or {}
    usage = output.get("token_usage") or {}
    gens = result.generations[0] if result.generations else []
    infos = [g.generation_info or {} for g in gens]
    reasons = [str(i["finish_reason"]) for i in infos if i.get("finish_reason")]
    message = getattr(gens[0], "message", None) if gens else None
    meta = getattr(message, "usage_metadata", None) or {}
    return {
        attr.GEN_AI_RESPONSE_MODEL: output.get("model_name") or model,
        attr.GEN_AI_RESPONSE_ID: output.get("id"),
        attr.GEN_AI_USAGE_INPUT_TOKENS: usage.get("prompt_tokens", meta.get("input_tokens")),
        attr.GEN_AI_USAGE_OUTPUT_TOKENS: usage.get("completion_tokens", meta.get("output_tokens")),
        attr.GEN_AI_RESPONSE_FINISH_REASONS: reasons or None,
        attr.GEN_AI_REQUEST_STREAM: streamed,
    }
