"""The callback vocabulary, declared once.

Every event a run can deliver is one :class:`EventSpec`: its name (langchain-core's handler
method), the run kinds that emit it, its role in a run (start, end, error or an event inside
the run), the ``ignore_*`` flag that silences it, its positional parameters, the run fields
passed as keyword arguments, and (for events inside a run) how it is recorded on the span.

Everything else is derived from :data:`EVENTS`: the ignore flags and the kind-to-event map
the runtime dispatches with, the start-event-to-kind map the run-tracking handlers use, the
span events of ``Run.emit``, and the test ``Recorder``. ``tests/test_events.py`` checks the
handler base classes against the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from spanhook.schema.agent import retry_error
from spanhook.tracing import attributes as attr

Role = Literal["start", "end", "error", "in_run"]
#: The run kinds (DESIGN section 1).
KINDS = ("chain", "llm", "chat_model", "tool", "agent", "retriever")
#: Run fields every event but the start and custom events carries as keyword arguments.
STANDARD = ("run_id", "parent_run_id", "tags")


@dataclass(frozen=True)
class SpanRecipe:
    """How an event inside a run becomes a span event: its name, the attributes recorded
    always (``plain``) and the content attributes recorded only when content capture is on."""

    name: str
    plain: Callable[[tuple[Any, ...]], Mapping[str, Any]] | None = None
    content: Callable[[tuple[Any, ...]], Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class EventSpec:
    name: str
    role: Role
    kinds: tuple[str, ...]
    ignore_flag: str | None
    params: tuple[str, ...]
    #: Run fields passed as keyword arguments (besides the event's own extras).
    context: tuple[str, ...] = STANDARD
    span: SpanRecipe | None = None


def _retry_plain(args: tuple[Any, ...]) -> Mapping[str, Any]:
    state = args[0]
    error = retry_error(state)
    return {
        "spanhook.retry.attempt": int(getattr(state, "attempt_number", 0)),
        "spanhook.retry.error": None if error is None else attr.safe_repr(error),
    }


_ALL = KINDS
_START_CONTEXT = ("run_id", "parent_run_id", "tags", "metadata")


def _lifecycle(
    group: str, kinds: tuple[str, ...], flag: str, start: tuple[str, ...], end: str
) -> tuple[EventSpec, EventSpec, EventSpec]:
    """The start, end and error events of a family of run kinds."""
    return (
        EventSpec(f"on_{group}_start", "start", kinds, flag, start, _START_CONTEXT),
        EventSpec(f"on_{group}_end", "end", kinds, flag, (end,)),
        EventSpec(f"on_{group}_error", "error", kinds, flag, ("error",)),
    )


_SPECS: tuple[EventSpec, ...] = (
    *_lifecycle("chain", ("chain", "agent"), "ignore_chain", ("serialized", "inputs"), "outputs"),
    EventSpec(
        "on_llm_start", "start", ("llm",), "ignore_llm", ("serialized", "prompts"), _START_CONTEXT
    ),
    EventSpec(
        "on_chat_model_start",
        "start",
        ("chat_model",),
        "ignore_chat_model",
        ("serialized", "messages"),
        _START_CONTEXT,
    ),
    # the token goes by keyword, as langchain-core passes it
    EventSpec("on_llm_new_token", "in_run", ("llm", "chat_model"), "ignore_llm", ("token",)),
    EventSpec("on_llm_end", "end", ("llm", "chat_model"), "ignore_llm", ("response",)),
    EventSpec("on_llm_error", "error", ("llm", "chat_model"), "ignore_llm", ("error",)),
    *_lifecycle("tool", ("tool",), "ignore_agent", ("serialized", "input_str"), "output"),
    *_lifecycle(
        "retriever", ("retriever",), "ignore_retriever", ("serialized", "query"), "documents"
    ),
    EventSpec(
        "on_agent_action",
        "in_run",
        ("agent",),
        "ignore_agent",
        ("action",),
        span=SpanRecipe(
            "spanhook.agent.action",
            plain=lambda a: {attr.GEN_AI_TOOL_NAME: a[0].tool},
            content=lambda a: {
                attr.GEN_AI_TOOL_CALL_ARGUMENTS: a[0].tool_input,
                "spanhook.log": a[0].log,
            },
        ),
    ),
    EventSpec(
        "on_agent_finish",
        "in_run",
        ("agent",),
        "ignore_agent",
        ("finish",),
        span=SpanRecipe(
            "spanhook.agent.finish", content=lambda a: {"spanhook.output": a[0].return_values}
        ),
    ),
    EventSpec(
        "on_text",
        "in_run",
        _ALL,
        None,
        ("text",),
        span=SpanRecipe("spanhook.text", content=lambda a: {"spanhook.text": a[0]}),
    ),
    EventSpec(
        "on_retry",
        "in_run",
        _ALL,
        "ignore_retry",
        ("retry_state",),
        span=SpanRecipe("spanhook.retry", plain=_retry_plain),
    ),
    EventSpec(
        "on_custom_event",
        "in_run",
        _ALL,
        "ignore_custom_event",
        ("name", "data"),
        context=("run_id", "tags", "metadata"),
        span=SpanRecipe(
            "spanhook.custom_event",
            plain=lambda a: {"spanhook.event.name": a[0]},
            content=lambda a: {"spanhook.data": a[1]},
        ),
    ),
)

# -- LangGraph's control flow: raised through runs, not a failure --------------------------


def _interrupts(error: BaseException) -> list[Any]:
    first = error.args[0] if error.args else ()
    return list(first) if isinstance(first, (list, tuple)) else []


def _interrupt_ids(args: tuple[Any, ...]) -> Mapping[str, Any]:
    ids = [str(i.id) for i in _interrupts(args[0]) if getattr(i, "id", None)]
    return {"spanhook.graph.signal": type(args[0]).__name__, "spanhook.graph.interrupt.ids": ids}


GRAPH_INTERRUPT = SpanRecipe(
    "spanhook.graph.interrupt",
    plain=_interrupt_ids,
    content=lambda a: {
        "spanhook.graph.interrupt.values": [getattr(i, "value", i) for i in _interrupts(a[0])]
    },
)
GRAPH_BUBBLE_UP = SpanRecipe(
    "spanhook.graph.bubble_up", plain=lambda a: {"spanhook.graph.signal": type(a[0]).__name__}
)


def graph_signal(error: BaseException) -> SpanRecipe | None:
    """How a run records LangGraph's control flow, or ``None`` for a real error.

    LangGraph raises ``GraphBubbleUp`` exceptions through the runs of a graph to pause it for
    a human (``interrupt()``: ``GraphInterrupt``) or to hand a ``Command`` to the parent graph
    (``ParentCommand``). A run they pass through did not fail: its span records the signal as
    an event and keeps an unset status."""
    for cls in type(error).__mro__:
        if cls.__module__ == "langgraph.errors":
            if cls.__name__ == "GraphInterrupt":
                return GRAPH_INTERRUPT
            if cls.__name__ == "GraphBubbleUp":
                return GRAPH_BUBBLE_UP
    return None


#: Every event, by name.
EVENTS: Mapping[str, EventSpec] = {s.name: s for s in _SPECS}
#: The ``ignore_*`` flag that silences each event (``None``: no flag, as in langchain-core).
IGNORE_FLAG: Mapping[str, str | None] = {s.name: s.ignore_flag for s in _SPECS}
#: The ``ignore_*`` flags that exist.
IGNORE_FLAGS = frozenset(f for f in IGNORE_FLAG.values() if f is not None)


def _kind_events(kind: str) -> tuple[str, str, str]:
    def of(role: Role) -> str:
        return next(s.name for s in _SPECS if s.role == role and kind in s.kinds)

    return of("start"), of("end"), of("error")


#: Start, end and error event of each run kind (chat models end like LLMs, agents like chains).
KIND_EVENTS: Mapping[str, tuple[str, str, str]] = {k: _kind_events(k) for k in KINDS}
#: The run kind each start event means (``chain`` may be refined to ``agent`` by the run).
START_KINDS: Mapping[str, str] = {s.name: s.kinds[0] for s in _SPECS if s.role == "start"}
#: The start, end and error events (the ones run-tracking handlers turn into lifecycle hooks).
LIFECYCLE_EVENTS = tuple(s.name for s in _SPECS if s.role != "in_run")
#: The events inside a run (tokens, text, agent steps, retries, custom events).
IN_RUN_EVENTS = tuple(s.name for s in _SPECS if s.role == "in_run")
