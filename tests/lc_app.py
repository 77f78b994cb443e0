"""A real langchain-core + LangGraph app for the LangChain integration tests (offline).

- ``ScriptedToolChatModel``: a ``BaseChatModel`` whose reply is a pure function of the
  conversation, so one compiled agent serves concurrent requests. With tools bound and no
  tool result yet, it calls a tool (``flaky_inventory`` when the question contains "fail",
  else ``fetch_data``); otherwise it answers. It reports usage like a provider (also on the
  last streamed chunk) and streams word by word. ``call_http=True`` makes it do an httpx GET
  inside ``_generate`` / ``_agenerate``, as a provider client does.
- ``fetch_data`` tool: an httpx GET to a local ``ThreadingHTTPServer`` on 127.0.0.1.
- ``build_chain``: ``RunnableLambda | ChatPromptTemplate | model | StrOutputParser`` (5 runs).
- ``build_agent``: ``langgraph.prebuilt.create_react_agent``.
- ``build_approval_graph``: a ``StateGraph`` whose ``ask`` node pauses for a human with
  ``interrupt()`` (its answer becomes ``approved=<answer>``), then ``finish`` adds "!".
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypedDict

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool, tool
from opentelemetry import trace


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(2)
        body = json.dumps({"path": self.path, "stock": 7}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 (any free port)."""

    def __init__(self) -> None:
        ThreadingHTTPServer.request_queue_size = 2048  # bursts of concurrent requests
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


#: Spans current inside bodies, recorded by the app for the tests: (where, span).
SEEN: list[tuple[str, trace.Span]] = []


def _usage(n_in: int, n_out: int) -> dict[str, int]:
    return {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}


class ScriptedToolChatModel(BaseChatModel):
    """See the module docstring."""

    model_name: str = "scripted-fake-1"
    server_url: str = ""
    call_http: bool = False
    chunk_delay: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, Any]:
        names = [t.name if isinstance(t, BaseTool) else str(t) for t in tools]
        return self.bind(tools=names, **kwargs)

    def _reply(self, messages: list[BaseMessage], tools: list[str] | None) -> AIMessage:
        question = next((str(m.content) for m in messages if m.type == "human"), "")
        n_in = sum(len(str(m.content).split()) for m in messages)
        if tools and not any(isinstance(m, ToolMessage) for m in messages):
            name = "flaky_inventory" if "fail" in question else "fetch_data"
            if name not in tools:
                name = tools[0]
            return AIMessage(
                content="",
                tool_calls=[{"name": name, "args": {"item": question}, "id": "call_1"}],
                usage_metadata=_usage(n_in, 3),  # type: ignore[arg-type]
            )
        last = str(messages[-1].content) if messages else ""
        text = f"answer to {question} given {last}".strip()
        return AIMessage(content=text, usage_metadata=_usage(n_in, len(text.split())))  # type: ignore[arg-type]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        SEEN.append(("chat_model", trace.get_current_span()))
        if self.call_http:
            httpx.get(f"{self.server_url}/model")
        message = self._reply(messages, kwargs.get("tools"))
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        SEEN.append(("chat_model", trace.get_current_span()))
        if self.call_http:
            async with httpx.AsyncClient() as client:
                await client.get(f"{self.server_url}/model")
        message = self._reply(messages, kwargs.get("tools"))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _chunks(self, message: AIMessage) -> list[AIMessageChunk]:
        if message.tool_calls:
            call = message.tool_calls[0]
            return [
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        {
                            "name": call["name"],
                            "args": json.dumps(call["args"]),
                            "id": call["id"],
                            "index": 0,
                        }
                    ],
                    usage_metadata=message.usage_metadata,
                )
            ]
        words = str(message.content).split(" ")
        out = [AIMessageChunk(content=w if i == 0 else " " + w) for i, w in enumerate(words)]
        out[-1].usage_metadata = message.usage_metadata
        return out

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        SEEN.append(("chat_model_stream", trace.get_current_span()))
        for chunk in self._chunks(self._reply(messages, kwargs.get("tools"))):
            if self.chunk_delay:
                time.sleep(self.chunk_delay)
            SEEN.append(("chat_model_stream", trace.get_current_span()))
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        SEEN.append(("chat_model_stream", trace.get_current_span()))
        for chunk in self._chunks(self._reply(messages, kwargs.get("tools"))):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            SEEN.append(("chat_model_stream", trace.get_current_span()))
            yield ChatGenerationChunk(message=chunk)


def make_tools(server_url: str, shared: httpx.AsyncClient | None = None) -> list[BaseTool]:
    """The app's tools; ``shared``: the async HTTP client the async tool uses (default: a
    new one per call)."""

    @tool
    def fetch_data(item: str) -> str:
        """Fetch the stock of an item from the inventory service."""
        SEEN.append(("tool", trace.get_current_span()))
        path = "/slow" if "slow" in item else "/data"
        return httpx.get(f"{server_url}{path}").text

    async def afetch_data(item: str) -> str:
        SEEN.append(("tool", trace.get_current_span()))
        path = "/slow" if "slow" in item else "/data"
        if shared is not None:
            return (await shared.get(f"{server_url}{path}")).text
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{server_url}{path}")).text

    fetch_data.coroutine = afetch_data  # type: ignore[attr-defined]

    @tool
    def flaky_inventory(item: str) -> str:
        """An inventory lookup that always fails."""
        raise RuntimeError(f"inventory backend down for {item}")

    return [fetch_data, flaky_inventory]


def enrich(x: dict[str, Any]) -> dict[str, Any]:
    SEEN.append(("lambda", trace.get_current_span()))
    return {**x, "topic": str(x.get("topic", "")).strip()}


def build_chain(model: BaseChatModel) -> Runnable[Any, str]:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), ("human", "Tell me about {topic}")]
    )
    return RunnableLambda(enrich) | prompt | model | StrOutputParser()


def build_agent(model: BaseChatModel, tools: list[BaseTool], name: str = "inventory_agent") -> Any:
    import warnings

    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():  # moved to `langchain.agents`, still LangGraph's own
        warnings.simplefilter("ignore", DeprecationWarning)
        return create_react_agent(model, tools, name=name)


class ApprovalState(TypedDict):
    item: str
    answer: str


def build_approval_graph(name: str = "LangGraph", fail: bool = False, **compile: Any) -> Any:
    """See the module docstring (``fail``: ``ask`` raises instead); compiled with an
    in-memory checkpointer and ``compile``'s other options (``interrupt_before=...``)."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def ask(state: ApprovalState) -> dict[str, str]:
        if fail:
            raise ValueError("approval service down")
        approved = interrupt({"question": f"refund {state['item']}?"})
        return {"answer": f"approved={approved}"}

    def finish(state: ApprovalState) -> dict[str, str]:
        return {"answer": state["answer"] + "!"}

    graph = StateGraph(ApprovalState)
    graph.add_node("ask", ask)
    graph.add_node("finish", finish)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=InMemorySaver(), name=name, **compile)
