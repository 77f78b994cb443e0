"""Chat messages, with the attribute shapes of langchain-core's message classes."""

from __future__ import annotations

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
    type: ClassVar[str] = "AIMessageChunk"

    def __add__(self, other: AIMessageChunk) -> AIMessageChunk:
        return AIMessageChunk(
            content=self.content + other.content,
            additional_kwargs={**self.additional_kwargs, **other.additional_kwargs},
            response_metadata={**self.response_metadata, **other.response_metadata},
            tool_calls=[*self.tool_calls, *other.tool_calls],
            usage_metadata=other.usage_metadata or self.usage_metadata,
            id=self.id or other.id,
        )


@dataclass
class ToolMessage(BaseMessage):
    tool_call_id: str = ""
    type: ClassVar[str] = "tool"


@dataclass
class ChatMessage(BaseMessage):
    role: str = "user"
    type: ClassVar[str] = "chat"


_ROLE_PREFIX = {"human": "Human", "ai": "AI", "AIMessageChunk": "AI", "system": "System", "tool": "Tool"}


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
}


def message_from_role(role: str, content: str) -> BaseMessage:
    """Build a message from a role name (``human``/``user``, ``ai``/``assistant``, ``system``)."""
    cls = _BY_ROLE.get(role)
    if cls is None:
        raise ValueError(
            f"unknown message role {role!r}: expected one of {sorted(_BY_ROLE)}"
        )
    return cls(content=content)
