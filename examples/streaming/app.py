"""The streaming app: a Starlette (FastAPI works the same) app whose WebSocket endpoint runs
an agent with a request-scoped ``WebSocketHandler``, and the page that shows the stream.

Protocol: the page sends ``{"question": "..."}``; the server streams the handler's JSON
messages (``start``, ``token``, ``agent_action``, ``end``, ``final_answer``, ``done``, ...)
for that request only, then waits for the next question on the same connection.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from examples.common import make_model
from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.callbacks import WebSocketHandler
from spanhook.tools import Tool

log = logging.getLogger("examples.streaming")
PAGE = Path(__file__).with_name("static") / "index.html"
MAX_QUESTION = 2000  # characters

GLOSSARY = {
    "span": "one timed operation of a trace, with attributes and events",
    "trace": "the tree of spans one request made",
    "callback": "a handler method spanhook calls when a run starts, streams, ends or fails",
}


def lookup(text: str) -> str:
    """The glossary entries of the terms that ``text`` mentions."""
    found = [f"{term}: {meaning}" for term, meaning in GLOSSARY.items() if term in text.lower()]
    return "; ".join(found) or f"no entry found; known terms: {', '.join(GLOSSARY)}"


def build_agent(args: argparse.Namespace) -> AgentExecutor:
    """One agent for every connection: it holds no per-request state, the handlers do."""
    return AgentExecutor(
        llm=make_model(args, streaming=True, delay=args.delay),
        tools=[
            calculator_tool(),
            Tool("glossary", lookup, "Explains a tracing term: span, trace or callback."),
        ],
        name="streaming-agent",
    )


def read_question(raw: str) -> str:
    """The question in a client message, or ValueError saying what is wrong with it."""
    try:
        message: Any = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError('send JSON like {"question": "What is 2 + 2?"}') from None
    question = message.get("question") if isinstance(message, dict) else None
    if not isinstance(question, str) or not question.strip():
        raise ValueError('the message needs a non-empty "question" string')
    if len(question) > MAX_QUESTION:
        raise ValueError(f"the question is longer than {MAX_QUESTION} characters")
    return question.strip()


def create_app(args: argparse.Namespace) -> Starlette:
    agent = build_agent(args)

    async def page(request: Request) -> FileResponse:
        return FileResponse(PAGE)

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
                # Request callback: this handler sees this request's runs and nothing else,
                # so concurrent connections never see each other's tokens.
                handler = WebSocketHandler(websocket)
                try:
                    await agent.arun(question, callbacks=[handler])
                except Exception as error:  # the page already got it: "error", then "done"
                    log.warning("request failed: %s: %s", type(error).__name__, error)
                await handler.aflush()
        except WebSocketDisconnect:
            return

    return Starlette(routes=[Route("/", page), WebSocketRoute("/ws", ask)])
