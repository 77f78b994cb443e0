"""spanhook's messages and tools in the OpenAI chat-completions request shape."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any


def to_openai_message(message: Any) -> dict[str, Any]:
    """A spanhook message in the chat-completions request shape."""
    kind = message.type
    role = {
        "human": "user",
        "ai": "assistant",
        "AIMessageChunk": "assistant",
        "system": "system",
        "tool": "tool",
    }.get(kind) or getattr(message, "role", None)
    if role is None:
        raise TypeError(f"cannot send a {type(message).__name__} to an OpenAI-compatible model")
    out: dict[str, Any] = {"role": role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if role == "assistant" and getattr(message, "tool_calls", None):
        out["tool_calls"] = [
            {
                "id": c.get("id"),
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c.get("args") or {})},
            }
            for c in message.tool_calls
        ]
        out["content"] = message.content or None
    if role == "tool":
        out["tool_call_id"] = message.tool_call_id
    return out


_JSON_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


def to_openai_tool(tool: Any) -> dict[str, Any]:
    """A tool definition for the request: OpenAI-shaped dicts pass through; a spanhook
    ``Tool`` becomes a function whose parameters come from its function's signature."""
    if isinstance(tool, Mapping):
        if tool.get("type") != "function" or not isinstance(tool.get("function"), Mapping):
            raise ValueError(
                f"a tool definition must look like {{'type': 'function', 'function': {{...}}}}, got {tool!r}"
            )
        return dict(tool)
    name = getattr(tool, "name", None)
    target = getattr(tool, "func", None) or getattr(tool, "coroutine", None)
    if not isinstance(name, str) or target is None:
        raise TypeError(f"tools take spanhook Tool objects or OpenAI tool dicts, got {tool!r}")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in inspect.signature(target).parameters.values():
        if p.name in ("run_manager", "callbacks") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        schema: dict[str, Any] = {}
        json_type = (
            _JSON_TYPES.get(p.annotation)
            if not isinstance(p.annotation, str)
            else {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
                p.annotation
            )
        )
        if json_type:
            schema["type"] = json_type
        properties[p.name] = schema
        if p.default is p.empty:
            required.append(p.name)
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": getattr(tool, "description", "") or "",
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }
