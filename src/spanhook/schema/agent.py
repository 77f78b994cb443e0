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


class RetryOutcome:
    """The failed attempt, read as tenacity's ``Future``: ``failed`` and ``exception()``."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    @property
    def failed(self) -> bool:
        return True

    def exception(self) -> BaseException:
        return self._error

    def result(self) -> Any:
        raise self._error


@dataclass
class RetryState(Serializable):
    """What ``on_retry`` receives: the tenacity ``RetryCallState`` attributes handlers read
    (``attempt_number``, ``idle_for``, ``outcome``, ``upcoming_sleep``), so a handler written
    for langchain-core's retries (its tracers read ``outcome``) reads spanhook's too."""

    attempt_number: int
    idle_for: float
    outcome_error: BaseException | None = None
    next_sleep: float = 0.0

    @property
    def outcome(self) -> RetryOutcome | None:
        return None if self.outcome_error is None else RetryOutcome(self.outcome_error)

    @property
    def upcoming_sleep(self) -> float:
        return self.next_sleep


def retry_error(retry_state: Any) -> BaseException | None:
    """The error behind a retry: spanhook's ``RetryState`` or tenacity's ``RetryCallState``
    (what langchain-core's retry decorator passes); ``None`` when there is none to read."""
    error = getattr(retry_state, "outcome_error", None)
    if isinstance(error, BaseException):
        return error
    outcome = getattr(retry_state, "outcome", None)
    try:
        if outcome is not None and outcome.failed:
            found = outcome.exception()
            return found if isinstance(found, BaseException) else None
    except Exception:
        return None
    return None
