"""``StdOutCallbackHandler``: the transcript ``verbose=True`` prints (langchain-core's text)."""

from __future__ import annotations

from typing import Any

from spanhook._color import bold, color_enabled, print_text
from spanhook.callbacks.base import BaseCallbackHandler
from spanhook.schema import AgentAction, AgentFinish


def chain_name(serialized: dict[str, Any] | None, kwargs: dict[str, Any]) -> str:
    """The name langchain-core prints for a chain: the ``name`` keyword, else the serialized
    name or class, else ``<unknown>``."""
    if kwargs.get("name"):
        return str(kwargs["name"])
    if serialized:
        return str(serialized.get("name", serialized.get("id", ["<unknown>"])[-1]))
    return "<unknown>"


class StdOutCallbackHandler(BaseCallbackHandler):
    """Prints chain entry/exit, text, agent actions and tool outputs to stdout."""

    def __init__(self, color: str | None = None) -> None:
        self.color = color

    def on_chain_start(self, serialized: dict[str, Any], inputs: dict[str, Any], **kwargs: Any) -> None:
        name = chain_name(serialized, kwargs)
        print(f"\n\n{bold(f'> Entering new {name} chain...')}", flush=True)

    def on_chain_end(self, outputs: dict[str, Any], **kwargs: Any) -> None:
        print(f"\n{bold('> Finished chain.')}", flush=True)

    def on_agent_action(self, action: AgentAction, color: str | None = None, **kwargs: Any) -> Any:
        print_text(action.log, color=color or self.color)

    def on_tool_end(
        self,
        output: Any,
        color: str | None = None,
        observation_prefix: str | None = None,
        llm_prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        output = str(output)
        if observation_prefix is not None:
            print_text(f"\n{observation_prefix}")
        print_text(output, color=color or self.color)
        if llm_prefix is not None:
            print_text(f"\n{llm_prefix}")

    def on_text(self, text: str, color: str | None = None, end: str = "", **kwargs: Any) -> None:
        print_text(text, color=color or self.color, end=end)

    def on_agent_finish(self, finish: AgentFinish, color: str | None = None, **kwargs: Any) -> None:
        print_text(finish.log, color=color or self.color, end="\n")


class StreamingStdOutCallbackHandler(BaseCallbackHandler):
    """Writes each streamed token to stdout as it arrives."""

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        import sys

        sys.stdout.write(str(token))
        sys.stdout.flush()


__all__ = ["StdOutCallbackHandler", "StreamingStdOutCallbackHandler", "chain_name", "color_enabled"]
