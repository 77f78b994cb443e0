"""Token usage: ``UsageCallbackHandler`` and the ``get_usage_callback()`` context manager.

Provider-neutral: the handler reads the usage every spanhook model reports in the
``LLMResult`` of ``on_llm_end`` (``llm_output["token_usage"]``, else the message's
``usage_metadata``, else the generation's ``generation_info["token_usage"]``). Streamed
calls (``stream()`` / ``astream()`` / ``streaming=True``) report their usage in that final
result too, so streaming and token counting work together.

``get_usage_callback()`` adds a handler to every run started inside the ``with`` block
(and to everything nested in those runs, including batch worker threads and asyncio tasks
that carry the context)::

    with get_usage_callback() as usage:
        agent.run("What is 12 * (3 + 4)?")
    print(usage.total_tokens, usage.successful_requests)

Cost is deliberately not computed here: prices are provider and contract specific; use
``usage.by_model`` with your own price table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from spanhook.callbacks.base import BaseCallbackHandler
from spanhook.runtime.scope import handlers_in_scope


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one or more model calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def _from_mapping(raw: Mapping[str, Any], prompt_key: str, completion_key: str) -> TokenUsage:
    prompt = _int(raw.get(prompt_key))
    completion = _int(raw.get(completion_key))
    total = _int(raw.get("total_tokens")) or prompt + completion
    return TokenUsage(prompt, completion, total)


def usage_from_result(response: Any) -> TokenUsage | None:
    """The token usage an ``LLMResult`` reports, or ``None`` if it reports none.

    Sources, first found wins (so nothing is counted twice): ``llm_output["token_usage"]``
    (``prompt_tokens`` / ``completion_tokens`` / ``total_tokens``); else, summed over the
    generations, each message's ``usage_metadata`` (``input_tokens`` / ``output_tokens`` /
    ``total_tokens``) or each ``generation_info["token_usage"]``.
    """
    llm_output = getattr(response, "llm_output", None)
    if isinstance(llm_output, Mapping):
        raw = llm_output.get("token_usage")
        if isinstance(raw, Mapping) and raw:
            return _from_mapping(raw, "prompt_tokens", "completion_tokens")
    generations = getattr(response, "generations", None) or []
    usage: TokenUsage | None = None
    for per_prompt in generations:
        for gen in per_prompt or []:
            found: TokenUsage | None = None
            meta = getattr(getattr(gen, "message", None), "usage_metadata", None)
            if isinstance(meta, Mapping) and meta:
                found = _from_mapping(meta, "input_tokens", "output_tokens")
            else:
                info = getattr(gen, "generation_info", None)
                raw = info.get("token_usage") if isinstance(info, Mapping) else None
                if isinstance(raw, Mapping) and raw:
                    found = _from_mapping(raw, "prompt_tokens", "completion_tokens")
            if found is not None:
                usage = found if usage is None else usage + found
    return usage


def model_from_result(response: Any, default: str = "unknown") -> str:
    llm_output = getattr(response, "llm_output", None)
    if isinstance(llm_output, Mapping) and llm_output.get("model_name"):
        return str(llm_output["model_name"])
    return default


class UsageCallbackHandler(BaseCallbackHandler):
    """Totals the tokens and requests of every model run it sees (thread-safe).

    ``successful_requests`` counts model runs that ended, ``failed_requests`` those that
    raised. ``by_model`` breaks the tokens down per model name.
    """

    run_inline = True  # a few additions under a lock: never worth a thread hop

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.total_tokens = 0
        self.successful_requests = 0
        self.failed_requests = 0
        self.by_model: dict[str, TokenUsage] = {}

    @property
    def usage(self) -> TokenUsage:
        with self._lock:
            return TokenUsage(self.prompt_tokens, self.completion_tokens, self.total_tokens)

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        usage = usage_from_result(response)
        model = model_from_result(response)
        with self._lock:
            self.successful_requests += 1
            if usage is None:
                return
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.total_tokens += usage.total_tokens
            self.by_model[model] = self.by_model.get(model, TokenUsage()) + usage

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        with self._lock:
            self.failed_requests += 1

    def reset(self) -> None:
        with self._lock:
            self.prompt_tokens = self.completion_tokens = self.total_tokens = 0
            self.successful_requests = self.failed_requests = 0
            self.by_model = {}

    def __repr__(self) -> str:
        return (
            f"Tokens Used: {self.total_tokens}\n"
            f"\tPrompt Tokens: {self.prompt_tokens}\n"
            f"\tCompletion Tokens: {self.completion_tokens}\n"
            f"Successful Requests: {self.successful_requests}\n"
            f"Failed Requests: {self.failed_requests}"
        )


@contextmanager
def get_usage_callback(
    handler: UsageCallbackHandler | None = None,
) -> Iterator[UsageCallbackHandler]:
    """Count the tokens of every model run started inside the ``with`` block.

    Runs started in threads inherit the block only if they carry its context (spanhook's
    ``batch``, ``ContextThreadPoolExecutor``, ``spanhook.carry``); asyncio tasks created
    inside the block always do. Runs nested in a counted run are counted wherever they
    execute.
    """
    if handler is not None and not isinstance(handler, UsageCallbackHandler):
        raise TypeError(
            f"get_usage_callback() takes a UsageCallbackHandler, got {type(handler).__name__}"
        )
    cb = handler if handler is not None else UsageCallbackHandler()
    with handlers_in_scope(cb):
        yield cb


__all__ = [
    "TokenUsage",
    "UsageCallbackHandler",
    "get_usage_callback",
    "model_from_result",
    "usage_from_result",
]
