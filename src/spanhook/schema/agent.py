"""Agent steps, with the shapes of langchain-core's ``AgentAction`` / ``AgentFinish``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from spanhook.schema._base import Serializable


@dataclass
class AgentAction(Serializable):
    tool: str
    tool_input: str | dict[str, Any]
    log: str
    type: Literal["AgentAction"] = "AgentAction"


@dataclass
class AgentFinish(Serializable):
    return_values: dict[str, Any]
    log: str
    type: Literal["AgentFinish"] = "AgentFinish"


@dataclass
class RetryState(Serializable):
    """What ``on_retry`` receives: the tenacity ``RetryCallState`` attributes handlers read."""

    attempt_number: int
    idle_for: float
    outcome_error: BaseException | None = None
    next_sleep: float = 0.0
