"""Model outputs: ``Generation``, ``ChatGeneration``, ``LLMResult``, with langchain-core's shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from spanhook.schema._base import Serializable
from spanhook.schema.messages import AIMessage, AIMessageChunk, BaseMessage

#: The ``type`` field of every generation class.
_GenerationType = Literal["Generation", "GenerationChunk", "ChatGeneration", "ChatGenerationChunk"]


@dataclass
class Generation(Serializable):
    text: str
    generation_info: dict[str, Any] | None = None
    type: _GenerationType = "Generation"


@dataclass
class GenerationChunk(Generation):
    type: _GenerationType = "GenerationChunk"

    def __add__(self, other: GenerationChunk) -> GenerationChunk:
        info = {**(self.generation_info or {}), **(other.generation_info or {})} or None
        return GenerationChunk(text=self.text + other.text, generation_info=info)


@dataclass
class ChatGeneration(Generation):
    text: str = ""
    message: BaseMessage = field(default_factory=lambda: AIMessage(content=""))
    type: _GenerationType = "ChatGeneration"

    def __post_init__(self) -> None:
        if not self.text:
            self.text = self.message.content


@dataclass
class ChatGenerationChunk(ChatGeneration):
    message: BaseMessage = field(default_factory=lambda: AIMessageChunk(content=""))
    type: _GenerationType = "ChatGenerationChunk"

    def __add__(self, other: ChatGenerationChunk) -> ChatGenerationChunk:
        a, b = self.message, other.message
        if isinstance(a, AIMessageChunk) and isinstance(b, AIMessageChunk):
            msg: BaseMessage = a + b
        else:
            msg = AIMessageChunk(content=a.content + b.content)
        info = {**(self.generation_info or {}), **(other.generation_info or {})} or None
        return ChatGenerationChunk(message=msg, generation_info=info)


@dataclass
class LLMResult(Serializable):
    """What a model run produced: ``generations[i]`` holds the outputs for prompt ``i``."""

    generations: list[list[Generation]]
    llm_output: dict[str, Any] | None = None
    run: list[dict[str, Any]] | None = None
    type: Literal["LLMResult"] = "LLMResult"

    def flatten(self) -> list[LLMResult]:
        return [
            LLMResult(generations=[gens], llm_output=self.llm_output) for gens in self.generations
        ]


@dataclass
class ChatResult(Serializable):
    generations: list[ChatGeneration]
    llm_output: dict[str, Any] | None = None
