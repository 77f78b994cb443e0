"""Data objects that flow through runs and reach handlers (shapes of langchain-core's)."""

from spanhook.schema.agent import AgentAction, AgentFinish, RetryState
from spanhook.schema.documents import Document
from spanhook.schema.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    get_buffer_string,
    message_from_role,
)
from spanhook.schema.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    GenerationChunk,
    LLMResult,
)

__all__ = [
    "AIMessage",
    "AIMessageChunk",
    "AgentAction",
    "AgentFinish",
    "BaseMessage",
    "ChatGeneration",
    "ChatGenerationChunk",
    "ChatMessage",
    "ChatResult",
    "Document",
    "Generation",
    "GenerationChunk",
    "HumanMessage",
    "LLMResult",
    "RetryState",
    "SystemMessage",
    "ToolMessage",
    "get_buffer_string",
    "message_from_role",
]
