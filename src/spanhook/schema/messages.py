"""Chat messages, with the attribute shapes of langchain-core's message classes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from spanhook.schema._base import Serializable


@dataclass
class BaseMessage(Serializable):
    """A message in a chat: ``content`` plus the metadata fields langchain-core carries."""

    content: str
    additional_kwargs: dict[str, Any] = field(default_factory=dict)
    response_metadata: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    id: str | None = None
    type: ClassVar[str] = "base"

    @property
    def text(self) -> str:
        return self.content

    def pretty_repr(self) -> str:
        title = f" {self.type.title()} Message "
        return f"{title:=^80}\n\n{self.content}"


@dataclass
class HumanMessage(BaseMessage):
    type: ClassVar[str] = "human"


@dataclass
class SystemMessage(BaseMessage):
    type: ClassVar[str] = "system"


@dataclass
class AIMessage(BaseMessage):
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage_metadata: dict[str, int] | None = None
    type: ClassVar[str] = "ai"


@dataclass
class AIMessageChunk(AIMessage):
    """A streamed piece of an ``AIMessage``. ``tool_call_chunks`` carry tool-call deltas
    (``name``, ``args`` text, ``id``, ``index``) as langchain-core's do: adding chunks joins
    the deltas of the same ``index``."""

    tool_call_chunks: list[dict[str, Any]] = field(default_factory=list)
    type: ClassVar[str] = "AIMessageChunk"

    def __add__(self, other: AIMessageChunk) -> AIMessageChunk:
        return AIMessageChunk(
            content=self.content + other.content,
            additional_kwargs={**self.additional_kwargs, **other.additional_kwargs},
            response_metadata={**self.response_metadata, **other.response_metadata},
            tool_calls=[*self.tool_calls, *other.tool_calls],
            usage_metadata=other.usage_metadata or self.usage_metadata,
            id=self.id or other.id,
            tool_call_chunks=merge_tool_call_chunks(self.tool_call_chunks, other.tool_call_chunks),
        )


def merge_tool_call_chunks(
    first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Join tool-call deltas: text fields of chunks with the same ``index`` are concatenated."""
    if not second:
        return first
    merged = [dict(c) for c in first]
    for chunk in second:
        index = chunk.get("index")
        target = next((m for m in merged if index is not None and m.get("index") == index), None)
        if target is None:
            merged.append(dict(chunk))
            continue
        for key, value in chunk.items():
            if value is None or key in ("index", "type"):
                continue
            old = target.get(key)
            target[key] = old + value if isinstance(old, str) and isinstance(value, str) else value
    return merged


def tool_calls_from_chunks(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete tool calls (``args`` parsed from JSON) from joined tool-call chunks; a call
    whose arguments are not valid JSON keeps them as text under ``args["__raw__"]``."""
    calls = []
    for c in chunks:
        text = c.get("args") or ""
        try:
            args = json.loads(text) if text else {}
        except ValueError:
            args = {"__raw__": text}
        if not isinstance(args, dict):
            args = {"__raw__": text}
        calls.append(
            {"name": c.get("name") or "", "args": args, "id": c.get("id"), "type": "tool_call"}
        )
    return calls


@dataclass
class ToolMessage(BaseMessage):
    tool_call_id: str = ""
    type: ClassVar[str] = "tool"


@dataclass
class ChatMessage(BaseMessage):
    role: str = "user"
    type: ClassVar[str] = "chat"


#: Prefixes of the other message types (human and AI ones are arguments).
_ROLE_PREFIX = {"system": "System", "tool": "Tool"}


def get_buffer_string(
    messages: Sequence[BaseMessage], human_prefix: str = "Human", ai_prefix: str = "AI"
) -> str:
    """Render messages as ``Role: content`` lines, the way langchain-core does."""
    lines = []
    for m in messages:
        if isinstance(m, ChatMessage):
            role = m.role
        elif m.type == "human":
            role = human_prefix
        elif m.type in ("ai", "AIMessageChunk"):
            role = ai_prefix
        else:
            role = _ROLE_PREFIX.get(m.type, m.type)
        lines.append(f"{role}: {m.content}")
    return "\n".join(lines)


_BY_ROLE: dict[str, type[BaseMessage]] = {
    "human": HumanMessage,
    "user": HumanMessage,
    "ai": AIMessage,
    "assistant": AIMessage,
    "system": SystemMessage,
    "developer": SystemMessage,
    "tool": ToolMessage,
}


def message_from_role(role: str, content: str, **fields: Any) -> BaseMessage:
    """Build a message from a role name (``human``/``user``, ``ai``/``assistant``,
    ``system``/``developer``, ``tool``) and the message's other fields (``name``,
    ``tool_calls``, ``tool_call_id``, ...)."""
    cls = _BY_ROLE.get(role)
    if cls is None:
        raise ValueError(f"unknown message role {role!r}: expected one of {sorted(_BY_ROLE)}")
    try:
        return cls(content=content, **fields)
    except TypeError as e:
        raise ValueError(f"a {role!r} message does not take the fields {sorted(fields)}") from e
