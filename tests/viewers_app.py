"""The app the viewer tests trace: a chain that retrieves documents, asks a chat model that
requests a tool, runs the tool and asks the model again; a root chat-model call; a tool that
fails. Offline and deterministic. Run as a script to export it (``python viewers_app.py``,
OTLP settings from ``OTEL_*``): the trace ids are printed as JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

from spanhook.callbacks import BaseCallbackHandler
from spanhook.chains import Chain
from spanhook.chat_models import OfflineChatModel
from spanhook.chat_models.base import BaseChatModel, Messages
from spanhook.retrievers import BaseRetriever
from spanhook.runtime.run import Run, current_run
from spanhook.schema import AIMessage, Document, HumanMessage, SystemMessage, ToolMessage
from spanhook.schema.outputs import ChatGeneration, ChatResult
from spanhook.tools import Tool

QUESTION = "What is 6 times 7?"
ANSWER = "6 times 7 is 42."
CALL_ID = "call_42"
SESSION = "sess-viewers"
GREETING = "Hello there"
USER = "user-7"
FACTS = [
    Document("Multiplication is repeated addition.", {"source": "math.md", "score": 0.9}, "d1"),
    Document("6 times 7 is a classic times-table question.", {"source": "tables.md"}, "d2"),
]


class ToolCallingChat(BaseChatModel):
    """Asks for the ``multiply`` tool until it sees a tool result, then answers with it."""

    model_name = "fake-tool-caller"

    def _generate(
        self,
        messages: Messages,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        results = [m for m in messages if isinstance(m, ToolMessage)]
        usage = {"input_tokens": 31, "output_tokens": 12, "total_tokens": 43}
        if results:
            msg = AIMessage(content=f"6 times 7 is {results[-1].content}.", usage_metadata=usage)
            reason = "stop"
        else:
            call = {"name": "multiply", "args": {"a": 6, "b": 7}, "id": CALL_ID}
            msg = AIMessage(content="", tool_calls=[{**call, "type": "tool_call"}])
            msg.usage_metadata = usage
            reason = "tool_calls"
        info = {"finish_reason": reason}
        return ChatResult(generations=[ChatGeneration(message=msg, generation_info=info)])


class FactsRetriever(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Run) -> list[Document]:
        return list(FACTS)


def multiply(a: int, b: int) -> int:
    return a * b


def weather(city: str) -> str:
    raise ConnectionError(f"weather service unreachable for {city}")


class AskWithTools(Chain):
    input_keys = ["question"]
    output_keys = ["answer"]

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        question = inputs["question"]
        docs = FactsRetriever(name="facts").invoke(question)
        chat = ToolCallingChat()
        tool = Tool(name="multiply", func=multiply, description="Multiplies a and b.")
        messages: list[Any] = [
            SystemMessage(content="Context: " + " ".join(d.page_content for d in docs)),
            HumanMessage(content=question),
        ]
        request = chat.invoke(messages)
        messages.append(request)
        for call in request.tool_calls:
            result = tool.run(call["args"], tool_call_id=call["id"])
            messages.append(ToolMessage(content=str(result), tool_call_id=call["id"]))
        return {"answer": chat.invoke(messages).content}


def trace_id_of_current() -> str:
    run = current_run()
    assert run is not None
    return run.trace_id


def run_app(session: str = SESSION) -> dict[str, str]:
    """Run the three requests; returns their trace ids by name."""
    ids: dict[str, str] = {}
    chain = AskWithTools(name="ask-with-tools", tags=["viewers-app"])
    answer = chain.invoke(
        {"question": QUESTION},
        metadata={"session_id": session, "user_id": USER, "tenant": "acme"},
        tags=["request-tag"],
        callbacks=[_TraceIds(ids, "ask-with-tools")],
    )
    assert answer["answer"] == ANSWER, answer
    OfflineChatModel(name="lone-chat").invoke(
        [HumanMessage(content=GREETING)], callbacks=[_TraceIds(ids, "lone-chat")]
    )
    failing = Tool(name="weather", func=weather, description="Current weather.")
    try:
        failing.run("Paris", callbacks=[_TraceIds(ids, "weather")])
    except ConnectionError:
        pass
    else:
        raise AssertionError("the weather tool should fail")
    return ids


class _TraceIds(BaseCallbackHandler):
    """A handler noting the trace id of the first run it sees under ``name``."""

    def __init__(self, ids: dict[str, str], name: str) -> None:
        self.ids, self.name = ids, name

    def _note(self, *args: Any, **kwargs: Any) -> None:
        self.ids.setdefault(self.name, trace_id_of_current())

    on_chain_start = on_chat_model_start = on_tool_start = _note


if __name__ == "__main__":
    import spanhook

    spanhook.configure(capture_content=True)
    session = sys.argv[1] if len(sys.argv) > 1 else SESSION
    ids = run_app(session)
    if not spanhook.force_flush(timeout=10.0):
        raise SystemExit("export did not complete")
    spanhook.shutdown(timeout=2.0)
    print(json.dumps(ids))
