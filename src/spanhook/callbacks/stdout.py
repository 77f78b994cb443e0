"""``StdOutCallbackHandler``: the transcript ``verbose=True`` prints (langchain-core's text)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

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
    """Prints chain entry/exit, text, agent actions and tool outputs to stdout, or to ``file``
    (any text stream, e.g. an ``io.StringIO`` to keep the transcript as a value); colour only
    when that stream is a terminal."""

    def __init__(self, color: str | None = None, file: TextIO | None = None) -> None:
        self.color = color
        self.file = file

    @property
    def _out(self) -> TextIO:
        return sys.stdout if self.file is None else self.file  # stdout looked up at each write

    def on_chain_start(
        self, serialized: dict[str, Any], inputs: dict[str, Any], **kwargs: Any
    ) -> None:
        name = chain_name(serialized, kwargs)
        out = self._out
        print(
            f"\n\n{bold(f'> Entering new {name} chain...', color_enabled(out))}",
            file=out,
            flush=True,
        )

    def on_chain_end(self, outputs: dict[str, Any], **kwargs: Any) -> None:
        out = self._out
        print(f"\n{bold('> Finished chain.', color_enabled(out))}", file=out, flush=True)

    def on_agent_action(self, action: AgentAction, color: str | None = None, **kwargs: Any) -> Any:
        print_text(action.log, color=color or self.color, file=self._out)

    def on_tool_end(
        self,
        output: Any,
        color: str | None = None,
        observation_prefix: str | None = None,
        llm_prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        output = str(output)
        out = self._out
        if observation_prefix is not None:
            print_text(f"\n{observation_prefix}", file=out)
        print_text(output, color=color or self.color, file=out)
        if llm_prefix is not None:
            print_text(f"\n{llm_prefix}", file=out)

    def on_text(self, text: str, color: str | None = None, end: str = "", **kwargs: Any) -> None:
        print_text(text, color=color or self.color, end=end, file=self._out)

    def on_agent_finish(self, finish: AgentFinish, color: str | None = None, **kwargs: Any) -> None:
        print_text(finish.log, color=color or self.color, end="\n", file=self._out)


class StreamingStdOutCallbackHandler(BaseCallbackHandler):
    """Writes each streamed token to stdout (or to ``file``) as it arrives."""

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        out = sys.stdout if self.file is None else self.file
        out.write(str(token))
        out.flush()


__all__ = ["StdOutCallbackHandler", "StreamingStdOutCallbackHandler", "chain_name", "color_enabled"]
