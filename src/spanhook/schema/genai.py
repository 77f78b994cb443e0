"""Messages in the shape of the OpenTelemetry GenAI semantic conventions
(``gen_ai.input.messages`` / ``gen_ai.output.messages``): a ``role`` and ``parts``: ``text``,
``tool_call`` (id, name, arguments) for an assistant turn that calls tools,
``tool_call_response`` (id, response) for a tool's answer; output messages add
``finish_reason``."""

from __future__ import annotations

from typing import Any

from spanhook.schema.messages import BaseMessage

_ROLES = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant", "tool": "tool"}

#: Provider finish reasons that have a name of their own in the conventions.
_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}


def text_message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def input_message(message: BaseMessage) -> dict[str, Any]:
    """One chat message as an input message of the conventions."""
    role = _ROLES.get(message.type) or getattr(message, "role", None) or message.type
    if message.type == "tool":
        call_id = getattr(message, "tool_call_id", None)
        part = {"type": "tool_call_response", "id": call_id, "response": message.content}
        return {"role": role, "parts": [part]}
    calls = getattr(message, "tool_calls", None) or []
    parts: list[dict[str, Any]] = []
    if message.content or not calls:
        parts.append({"type": "text", "content": message.content})
    parts.extend(
        {"type": "tool_call", "id": c.get("id"), "name": c.get("name"), "arguments": c.get("args")}
        for c in calls
    )
    return {"role": role, "parts": parts}


def output_message(generation: Any) -> dict[str, Any]:
    """One generation (text, or a chat message that may call tools) as an output message."""
    message = getattr(generation, "message", None)
    out = (
        input_message(message)
        if isinstance(message, BaseMessage)
        else text_message("assistant", generation.text)
    )
    out["role"] = "assistant"
    reason = str((generation.generation_info or {}).get("finish_reason") or "stop")
    out["finish_reason"] = _FINISH_REASONS.get(reason, reason)
    return out
