"""``ConsoleCallbackHandler``: langchain-core's debug transcript (``[chain/start]``,
breadcrumbs, JSON inputs and outputs, elapsed time) followed by the span tree of each
finished top-level run."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from uuid import UUID

from spanhook._color import bold, color_enabled, colored
from spanhook.callbacks.tracker import RunInfo, RunTracker
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
    parent: UUID | None
    node: Node
    crumbs: str = ""


#: How each run kind is shown: its label, its title, its start and end payloads.
_SHOWN: dict[str, tuple[str, str, Callable[[Any], Any], Callable[[Any], Any]]] = {
    "chain": ("chain", "Chain", lambda v: v, lambda v: v),
    "agent": ("chain", "Chain", lambda v: v, lambda v: v),
    "llm": ("llm", "LLM", lambda v: {"prompts": v}, lambda v: v),
    "chat_model": (
        "llm",
        "LLM",
        lambda v: {"prompts": [get_buffer_string(m) for m in v]},
        lambda v: v,
    ),
    "tool": ("tool", "Tool", lambda v: v, str),
    "retriever": (
        "retriever",
        "Retriever",
        lambda v: {"query": v},
        lambda v: {"documents": list(v)},
    ),
}


class ConsoleCallbackHandler(RunTracker):
    """Prints every run's start, end and error with its position in the run tree."""

    def __init__(self, stream: TextIO | None = None, tree: bool = True) -> None:
        super().__init__()
        self._stream = stream
        self.tree = tree

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

    # -- the run's life ----------------------------------------------------------------
    def run_started(self, run: RunInfo) -> None:
        label, title, shown, _ = _SHOWN[run.kind]
        parent_run = self.active(run.parent_run_id) if run.parent_run_id else None
        parent: _Rec | None = parent_run.state if parent_run is not None else None
        crumb = f"{label}:{run.name}"
        rec = _Rec(
            run.parent_run_id if parent is not None else None,
            Node(name=run.name, kind=label, duration_ns=0, ok=True),
            f"{parent.crumbs} > {crumb}" if parent is not None else crumb,
        )
        if parent is not None:
            with self._lock:
                parent.node.children.append(rec.node)
        run.state = rec
        self._print(
            f"{label}/start", "green", rec, f"Entering {title} run with input:", shown(run.inputs)
        )

    def run_ended(self, run: RunInfo, output: Any, kwargs: dict[str, Any]) -> None:
        self._ended(run, output, None)

    def run_failed(self, run: RunInfo, error: BaseException, kwargs: dict[str, Any]) -> None:
        self._ended(run, None, error)

    def _ended(self, run: RunInfo, output: Any, error: BaseException | None) -> None:
        rec: _Rec | None = run.state
        if rec is None or run.duration_ms is None:
            return  # its start was not seen
        elapsed = run.duration_ms / 1e3
        rec.node.duration_ns = int(elapsed * 1e9)
        label, title, _, shown = _SHOWN[run.kind]
        if error is not None:
            rec.node.ok, rec.node.error = False, f"{type(error).__name__}: {error}"
            tag, color, text = "error", "red", f"{title} run errored with error:"
            payload: Any = repr(error)
        elif run.signal is not None:  # paused or redirected by LangGraph
            tag, color, text = "end", "blue", f"Exiting {title} run stopped by:"
            payload = run.signal
        else:
            if label == "llm":
                usage = (getattr(output, "llm_output", None) or {}).get("token_usage") or {}
                rec.node.input_tokens = usage.get("prompt_tokens")
                rec.node.output_tokens = usage.get("completion_tokens")
            tag, color, text = "end", "blue", f"Exiting {title} run with output:"
            payload = shown(output)
        self._print(f"{label}/{tag}", color, rec, text, payload, elapsed)
        if self.tree and rec.parent is None:  # a top-level run: its tree
            print(
                render([rec.node], color_enabled(self._out()), "\nRun tree:"),
                file=self._out(),
                flush=True,
            )
