"""``ConsoleCallbackHandler``: langchain-core's debug transcript (``[chain/start]``,
breadcrumbs, JSON inputs and outputs, elapsed time) followed by the span tree of each
finished top-level run."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO
from uuid import UUID

from spanhook._color import bold, color_enabled, colored
from spanhook.callbacks.base import BaseCallbackHandler
from spanhook.schema.messages import get_buffer_string
from spanhook.tracing.render import Node, render


def _json(value: Any) -> str:
    def default(o: Any) -> Any:
        dump = getattr(o, "model_dump", None)
        return dump() if callable(dump) else repr(o)

    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=default)
    except (TypeError, ValueError):
        return repr(value)


def _elapsed(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.2f}s"


@dataclass
class _Rec:
    kind: str
    name: str
    parent: UUID | None
    start: float
    node: Node
    crumbs: str = ""
    tokens: dict[str, int] = field(default_factory=dict)


class ConsoleCallbackHandler(BaseCallbackHandler):
    """Prints every run's start, end and error with its position in the run tree."""

    def __init__(self, stream: TextIO | None = None, tree: bool = True) -> None:
        self._stream = stream
        self.tree = tree
        self._runs: dict[UUID, _Rec] = {}
        self._lock = threading.Lock()

    # -- output ---------------------------------------------------------------------
    def _out(self) -> TextIO:
        return self._stream or sys.stdout

    def _print(
        self, tag: str, color: str, rec: _Rec, text: str, payload: Any, elapsed: float | None = None
    ) -> None:
        on = color_enabled(self._out())
        timing = f"[{_elapsed(elapsed)}] " if elapsed is not None else ""
        head = colored(f"[{tag}]", color, on) + " " + bold(f"[{rec.crumbs}] {timing}{text}\n", on)
        body = payload if isinstance(payload, str) and tag.endswith("error") else _json(payload)
        print(head + body, file=self._out(), flush=True)

    # -- bookkeeping ------------------------------------------------------------------
    def _start(self, kind: str, name: str, run_id: UUID, parent_run_id: UUID | None) -> _Rec:
        with self._lock:
            parent = self._runs.get(parent_run_id) if parent_run_id else None
            crumb = f"{kind}:{name}"
            rec = _Rec(
                kind,
                name,
                parent_run_id if parent else None,
                time.monotonic(),
                Node(name=name, kind=kind, duration_ns=0, ok=True),
                f"{parent.crumbs} > {crumb}" if parent else crumb,
            )
            if parent is not None:
                parent.node.children.append(rec.node)
            self._runs[run_id] = rec
        return rec

    def _end(self, run_id: UUID, error: BaseException | None = None) -> tuple[_Rec, float] | None:
        with self._lock:
            rec = self._runs.get(run_id)
            if rec is None:
                return None
            elapsed = time.monotonic() - rec.start
            rec.node.duration_ns = int(elapsed * 1e9)
            if error is not None:
                rec.node.ok, rec.node.error = False, f"{type(error).__name__}: {error}"
            del self._runs[run_id]
        return rec, elapsed

    def _maybe_tree(self, rec: _Rec) -> None:
        if self.tree and rec.parent is None:
            print(
                render([rec.node], color_enabled(self._out()), "\nRun tree:"),
                file=self._out(),
                flush=True,
            )

    @staticmethod
    def _name(serialized: dict[str, Any] | None, kwargs: dict[str, Any], default: str) -> str:
        if kwargs.get("name"):
            return str(kwargs["name"])
        if serialized:
            return str(serialized.get("name") or serialized.get("id", [default])[-1])
        return default

    # -- events -----------------------------------------------------------------------
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        rec = self._start("chain", self._name(serialized, kwargs, "Chain"), run_id, parent_run_id)
        self._print("chain/start", "green", rec, "Entering Chain run with input:", inputs)

    def on_chain_end(self, outputs: dict[str, Any], *, run_id: UUID, **kwargs: Any) -> None:
        done = self._end(run_id)
        if done:
            rec, elapsed = done
            self._print(
                "chain/end", "blue", rec, "Exiting Chain run with output:", outputs, elapsed
            )
            self._maybe_tree(rec)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        done = self._end(run_id, error)
        if done:
            rec, elapsed = done
            self._print(
                "chain/error", "red", rec, "Chain run errored with error:", repr(error), elapsed
            )
            self._maybe_tree(rec)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        rec = self._start("llm", self._name(serialized, kwargs, "LLM"), run_id, parent_run_id)
        self._print("llm/start", "green", rec, "Entering LLM run with input:", {"prompts": prompts})

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        rec = self._start("llm", self._name(serialized, kwargs, "ChatModel"), run_id, parent_run_id)
        prompts = [get_buffer_string(m) for m in messages]
        self._print("llm/start", "green", rec, "Entering LLM run with input:", {"prompts": prompts})

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        done = self._end(run_id)
        if done:
            rec, elapsed = done
            usage = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
            rec.node.input_tokens = usage.get("prompt_tokens")
            rec.node.output_tokens = usage.get("completion_tokens")
            self._print("llm/end", "blue", rec, "Exiting LLM run with output:", response, elapsed)
            self._maybe_tree(rec)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        done = self._end(run_id, error)
        if done:
            rec, elapsed = done
            self._print(
                "llm/error", "red", rec, "LLM run errored with error:", repr(error), elapsed
            )
            self._maybe_tree(rec)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        rec = self._start("tool", self._name(serialized, kwargs, "Tool"), run_id, parent_run_id)
        self._print("tool/start", "green", rec, "Entering Tool run with input:", input_str)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        done = self._end(run_id)
        if done:
            rec, elapsed = done
            self._print(
                "tool/end", "blue", rec, "Exiting Tool run with output:", str(output), elapsed
            )
            self._maybe_tree(rec)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        done = self._end(run_id, error)
        if done:
            rec, elapsed = done
            self._print(
                "tool/error", "red", rec, "Tool run errored with error:", repr(error), elapsed
            )
            self._maybe_tree(rec)

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        rec = self._start(
            "retriever", self._name(serialized, kwargs, "Retriever"), run_id, parent_run_id
        )
        self._print(
            "retriever/start", "green", rec, "Entering Retriever run with input:", {"query": query}
        )

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        done = self._end(run_id)
        if done:
            rec, elapsed = done
            self._print(
                "retriever/end",
                "blue",
                rec,
                "Exiting Retriever run with output:",
                {"documents": list(documents)},
                elapsed,
            )
            self._maybe_tree(rec)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        done = self._end(run_id, error)
        if done:
            rec, elapsed = done
            self._print(
                "retriever/error",
                "red",
                rec,
                "Retriever run errored with error:",
                repr(error),
                elapsed,
            )
            self._maybe_tree(rec)
