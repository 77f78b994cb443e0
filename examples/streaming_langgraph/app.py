"""The streaming app with a LangGraph agent: the page and protocol of ``examples.streaming``,
the agent a ``create_react_agent`` graph traced by ``spanhook.langchain.instrument()``.

The WebSocket endpoint runs the graph with a fresh ``WebSocketHandler`` in
``config={"callbacks": [...]}``: langchain-core hands that request's runs (the graph, its
nodes, model and tool runs) to that handler and to no other request's.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import spanhook.langchain
from examples.streaming.app import PAGE, read_question
from examples.streaming_langgraph.agent import build_agent
from spanhook.callbacks import WebSocketHandler
from spanhook.callbacks.logger import render_error
from spanhook.callbacks.websocket import MESSAGE_TYPES

log = logging.getLogger("examples.streaming_langgraph")

#: The handler streams everything but ``done``: a graph reports no agent-finish event, so the
#: endpoint sends the answer from the graph's final state, then ``done``, itself.
STREAMED = MESSAGE_TYPES - {"done"}


def final_answer(state: dict[str, Any]) -> str:
    """The text of the graph's last message."""
    return str(state["messages"][-1].content)


def create_app(delay: float = 0.0) -> Starlette:
    spanhook.langchain.instrument()  # every langchain-core run is a spanhook run from now on
    agent = build_agent(delay)

    async def page(request: Request) -> FileResponse:
        return FileResponse(PAGE)

    async def answer(websocket: WebSocket, question: str) -> None:
        handler = WebSocketHandler(websocket, events=STREAMED)
        try:
            state = await agent.ainvoke(
                {"messages": [("human", question)]}, config={"callbacks": [handler]}
            )
        except Exception as error:  # the page already got the run's "error" message
            log.warning("request failed: %s: %s", type(error).__name__, error)
            await handler.aflush()
            await websocket.send_json({"type": "done", "ok": False, "error": render_error(error)})
            return
        await handler.aflush()  # tokens and tool calls first, in order
        text = final_answer(state)
        await websocket.send_json({"type": "final_answer", "answer": text})
        await websocket.send_json({"type": "done", "ok": True, "output": text})

    async def ask(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                raw = await websocket.receive_text()
                try:
                    question = read_question(raw)
                except ValueError as bad:
                    await websocket.send_json({"type": "done", "ok": False, "error": str(bad)})
                    continue
                await answer(websocket, question)
        except WebSocketDisconnect:
            return

    return Starlette(routes=[Route("/", page), WebSocketRoute("/ws", ask)])
