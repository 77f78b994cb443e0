"""WebSocketCallbackHandler over real WebSocket connections on 127.0.0.1: exact message
sequences for sync and async runs (client and server connections), order across threads,
a run that never waits for the network, and a peer that closes mid-stream."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.asyncio.server import ServerConnection, serve
from websockets.sync.client import connect as sconnect

from helpers import Recorder
from spanhook.agents import AgentExecutor
from spanhook.callbacks import WebSocketCallbackHandler, WebSocketHandler
from spanhook.demo import build_agent
from spanhook.llms import OfflineLLM
from spanhook.llms.offline import tokenize
from spanhook.tools import Tool
from test_logger import FlakyLLM

QUESTION = "What is 12 * (3 + 4)?"
WAIT = 20.0  # generous bound for slow CI; never reached when things work


class CollectServer:
    """A websockets server in its own thread and loop: records every JSON message a client
    sends; with ``close_after=n`` it closes each connection after ``n`` messages."""

    def __init__(self, close_after: int | None = None) -> None:
        self.close_after = close_after
        self.messages: list[dict[str, Any]] = []
        self._dones = threading.Condition()
        self.closed = threading.Event()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._main(),), daemon=True
        )
        self.port = 0

    async def _close(self, ws: ServerConnection) -> None:
        await ws.close()
        self.closed.set()

    async def _handle(self, ws: ServerConnection) -> None:
        closing: asyncio.Task[None] | None = None
        async for raw in ws:  # keeps reading while closing, so the close handshake goes through
            msg = json.loads(raw)
            self.messages.append(msg)
            if msg["type"] == "done":
                with self._dones:
                    self._dones.notify_all()
            if (
                closing is None
                and self.close_after is not None
                and len(self.messages) >= self.close_after
            ):
                closing = asyncio.create_task(self._close(ws))
        if closing is not None:
            await closing

    async def _main(self) -> None:
        self._stop = self._loop.create_future()
        async with serve(self._handle, "127.0.0.1", 0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> CollectServer:
        self._thread.start()
        assert self._ready.wait(WAIT)
        return self

    def __exit__(self, *exc: object) -> None:
        stop = self._stop
        assert stop is not None
        self._loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
        self._thread.join(WAIT)
        self._loop.close()

    def wait_done(self, count: int = 1) -> list[dict[str, Any]]:
        """Wait until ``count`` 'done' messages arrived; all messages so far."""
        with self._dones:
            ok = self._dones.wait_for(
                lambda: sum(m["type"] == "done" for m in self.messages) >= count, WAIT
            )
        assert ok, f"expected {count} 'done' message(s); got {[m['type'] for m in self.messages]}"
        return list(self.messages)


@pytest.fixture
def server() -> Iterator[CollectServer]:
    with CollectServer() as s:
        yield s


def balanced(msgs: list[dict[str, Any]]) -> None:
    """Every start is closed by an end/error of the same run, properly nested."""
    stack: list[str] = []
    for m in msgs:
        if m["type"] == "start":
            stack.append(m["run_id"])
        elif m["type"] in ("end", "error"):
            assert stack and stack.pop() == m["run_id"]
    assert stack == []


def check_agent_stream(msgs: list[dict[str, Any]], rec: Recorder, answer: str) -> None:
    """The exact message sequence of the demo agent, derived from what a recorder saw."""
    assert answer == "84"
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    starts = rec.starts()
    agent_id, llm1, tool_id, llm2 = (str(e.run_id) for e in starts)
    ends = rec.of("on_llm_end")
    text1, text2 = (e.args[0].generations[0][0].text for e in ends)
    toks = rec.of("on_llm_new_token")
    n1 = sum(1 for e in toks if str(e.run_id) == llm1)
    n2 = sum(1 for e in toks if str(e.run_id) == llm2)
    assert n1 > 5 and n2 > 5
    assert [m["type"] for m in msgs] == [
        "start",
        "start",
        *["token"] * n1,
        "end",
        "agent_action",
        "start",
        "end",
        "start",
        *["token"] * n2,
        "end",
        "final_answer",
        "end",
        "done",
    ]
    assert [(m["kind"], m["name"], m["run_id"]) for m in msgs if m["type"] == "start"] == [
        ("agent", "demo-agent", agent_id),
        ("llm", "OfflineLLM", llm1),
        ("tool", "calculator", tool_id),
        ("llm", "OfflineLLM", llm2),
    ]
    assert [m["parent_run_id"] for m in msgs if m["type"] == "start"] == [
        None,
        agent_id,
        agent_id,
        agent_id,
    ]
    balanced(msgs)
    assert (
        "".join(m["token"] for m in msgs if m["type"] == "token" and m["run_id"] == llm1) == text1
    )
    assert (
        "".join(m["token"] for m in msgs if m["type"] == "token" and m["run_id"] == llm2) == text2
    )
    (action,) = [m for m in msgs if m["type"] == "agent_action"]
    assert (action["tool"], action["tool_input"]) == ("calculator", "12 * (3 + 4)")
    (tool_end,) = [m for m in msgs if m["type"] == "end" and m["run_id"] == tool_id]
    assert tool_end["output"] == "84"
    (final,) = [m for m in msgs if m["type"] == "final_answer"]
    assert final["answer"] == "84"
    assert msgs[-1] == {
        "type": "done",
        "ok": True,
        "run_id": agent_id,
        "output": "84",
        "seq": len(msgs) - 1,
    }


def test_sync_run_with_sync_client_connection(server: CollectServer) -> None:
    rec = Recorder()
    with sconnect(server.uri) as ws:
        handler = WebSocketHandler(ws)
        assert not handler.run_inline
        answer = build_agent(verbose=False).run(QUESTION, callbacks=[handler, rec])
        msgs = server.wait_done()
    check_agent_stream(msgs, rec, answer)
    assert (handler.sent, handler.failures) == (len(msgs), 0)


def test_async_run_with_async_client_connection(server: CollectServer) -> None:
    async def main() -> tuple[str, Recorder, WebSocketCallbackHandler]:
        rec = Recorder()
        async with aconnect(server.uri) as ws:
            handler = WebSocketCallbackHandler(ws)
            assert handler.run_inline  # events handled on the loop, no thread hop
            answer = await build_agent(verbose=False).arun(QUESTION, callbacks=[handler, rec])
            assert await handler.aflush(WAIT)
        return answer, rec, handler

    answer, rec, handler = asyncio.run(main())
    msgs = server.wait_done()
    check_agent_stream(msgs, rec, answer)
    assert (handler.sent, handler.failures) == (len(msgs), 0)


def test_sync_run_in_a_thread_with_async_connection(server: CollectServer) -> None:
    async def main() -> tuple[str, Recorder]:
        rec = Recorder()
        async with aconnect(server.uri) as ws:
            handler = WebSocketCallbackHandler(ws)
            agent = build_agent(verbose=False)
            answer = await asyncio.to_thread(agent.run, QUESTION, callbacks=[handler, rec])
            assert await handler.aflush(WAIT)
        return answer, rec

    answer, rec = asyncio.run(main())
    check_agent_stream(server.wait_done(), rec, answer)


def test_async_run_with_sync_connection_uses_worker_threads(server: CollectServer) -> None:
    rec = Recorder()
    with sconnect(server.uri) as ws:
        handler = WebSocketHandler(ws)
        answer = asyncio.run(build_agent(verbose=False).arun(QUESTION, callbacks=[handler, rec]))
        msgs = server.wait_done()
    check_agent_stream(msgs, rec, answer)


def test_server_side_connection_streams_to_the_client() -> None:
    """The realistic deployment: a websockets server answers each question by streaming
    the agent's events to its client."""
    recs: list[Recorder] = []

    async def answer_questions(ws: ServerConnection) -> None:
        async for question in ws:
            rec = Recorder()
            recs.append(rec)
            handler = WebSocketHandler(ws)
            await build_agent(verbose=False).arun(str(question), callbacks=[handler, rec])
            await handler.aflush(WAIT)

    async def main() -> list[dict[str, Any]]:
        async with serve(answer_questions, "127.0.0.1", 0) as srv:
            port = next(iter(srv.sockets)).getsockname()[1]
            async with aconnect(f"ws://127.0.0.1:{port}") as client:
                await client.send(QUESTION)
                got: list[dict[str, Any]] = []
                while not got or got[-1]["type"] != "done":
                    got.append(json.loads(await asyncio.wait_for(client.recv(), WAIT)))
                return got

    msgs = asyncio.run(main())
    check_agent_stream(msgs, recs[0], "84")


def test_streaming_llm_alone(server: CollectServer) -> None:
    with sconnect(server.uri) as ws:
        handler = WebSocketHandler(ws)
        text = OfflineLLM(streaming=True).invoke("tell me a story", callbacks=[handler])
        msgs = server.wait_done()
    assert [m["type"] for m in msgs] == ["start", *["token"] * len(tokenize(text)), "end", "done"]
    assert (
        "".join(m["token"] for m in msgs if m["type"] == "token")
        == text
        == "You said: tell me a story"
    )
    assert msgs[-1]["output"] == text
    assert "text" not in msgs[-2]  # streamed: the text went out as tokens


def test_run_never_waits_for_the_network(server: CollectServer) -> None:
    """Sends are held back by a gate: an async run still completes, then everything is
    delivered in order once the connection can send again."""

    class Gated:
        def __init__(self, ws: Any) -> None:
            self.ws, self.loop, self.gate = ws, ws.loop, asyncio.Event()

        async def send(self, data: str) -> None:
            await self.gate.wait()
            await self.ws.send(data)

    async def main() -> tuple[str, int, int, WebSocketCallbackHandler]:
        async with aconnect(server.uri) as ws:
            gated = Gated(ws)
            handler = WebSocketCallbackHandler(gated)
            out = await asyncio.wait_for(
                OfflineLLM(streaming=True).ainvoke("tell me a story", callbacks=[handler]), WAIT
            )
            pending_before, sent_before = (
                handler._queue.qsize() if handler._queue else 0,
                handler.sent,
            )
            gated.gate.set()
            assert await handler.aflush(WAIT)
            return out, pending_before, sent_before, handler

    out, pending, sent_before, handler = asyncio.run(main())
    msgs = server.wait_done()
    assert sent_before == 0 and pending == len(msgs) - 1  # one message is inside the gated send
    assert "".join(m["token"] for m in msgs if m["type"] == "token") == out
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    assert handler.sent == len(msgs)


def test_concurrent_sync_runs_share_one_async_connection_in_order(server: CollectServer) -> None:
    async def main() -> list[str]:
        async with aconnect(server.uri) as ws:
            handler = WebSocketCallbackHandler(ws, events={"token", "done"})
            llm = OfflineLLM(streaming=True)
            outs = await asyncio.gather(
                *(
                    asyncio.to_thread(llm.invoke, f"say number {i} please", callbacks=[handler])
                    for i in range(4)
                )
            )
            assert await handler.aflush(WAIT)
            return list(outs)

    outs = asyncio.run(main())
    msgs = server.wait_done(4)
    assert {m["type"] for m in msgs} == {"token", "done"}
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    by_run: dict[str, str] = {}
    for m in msgs:
        if m["type"] == "token":
            by_run[m["run_id"]] = by_run.get(m["run_id"], "") + m["token"]
    assert sorted(by_run.values()) == sorted(outs)
    assert sorted(m["output"] for m in msgs if m["type"] == "done") == sorted(outs)


def _agent_with_blocking_tool(peer_closed: threading.Event) -> AgentExecutor:
    def calculator(expression: str) -> str:
        assert peer_closed.wait(WAIT), "the server never closed"
        return "84"

    tool = Tool(name="calculator", func=calculator, description="Evaluates arithmetic.")
    return AgentExecutor(llm=OfflineLLM(streaming=True), tools=[tool], name="closing-agent")


def test_peer_closing_mid_stream_sync(caplog: pytest.LogCaptureFixture) -> None:
    with CollectServer(close_after=3) as srv, sconnect(srv.uri) as ws:
        handler = WebSocketHandler(ws)
        with caplog.at_level(logging.WARNING, logger="spanhook.callbacks"):
            answer = _agent_with_blocking_tool(srv.closed).run(QUESTION, callbacks=[handler])
    assert answer == "84"  # the run completed
    assert handler.failures > 0 and handler.last_error is not None
    assert handler.sent + handler.failures == handler._seq  # every message accounted for
    warnings = [
        r for r in caplog.records if "WebSocketCallbackHandler could not send" in r.getMessage()
    ]
    assert len(warnings) == 1


def test_peer_closing_mid_stream_async(caplog: pytest.LogCaptureFixture) -> None:
    async def main(srv: CollectServer) -> tuple[str, WebSocketCallbackHandler]:
        async with aconnect(srv.uri) as ws:
            handler = WebSocketHandler(ws)
            answer = await _agent_with_blocking_tool(srv.closed).arun(QUESTION, callbacks=[handler])
            assert await handler.aflush(WAIT)
            return answer, handler

    with (
        CollectServer(close_after=3) as srv,
        caplog.at_level(logging.WARNING, logger="spanhook.callbacks"),
    ):
        answer, handler = asyncio.run(main(srv))
    assert answer == "84"
    assert handler.failures > 0
    assert handler.sent + handler.failures == handler._seq
    warnings = [
        r for r in caplog.records if "WebSocketCallbackHandler could not send" in r.getMessage()
    ]
    assert len(warnings) == 1


def test_connect_helpers(server: CollectServer) -> None:
    handler = WebSocketCallbackHandler.connect(server.uri)
    OfflineLLM(streaming=True).invoke("1 + 2 = ", callbacks=[handler])
    handler.close()
    assert [m["type"] for m in server.wait_done()] == ["start", "token", "end", "done"]

    async def main() -> None:
        h = await WebSocketCallbackHandler.aconnect(server.uri)
        await OfflineLLM().ainvoke("1 + 2 = ", callbacks=[h])
        await h.aclose()

    asyncio.run(main())
    msgs = server.wait_done(2)[4:]
    assert [m["type"] for m in msgs] == ["start", "end", "done"]
    assert msgs[1]["text"] == "3"  # not streamed: the end message carries the text


def test_missing_websockets_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "websockets", None)
    with pytest.raises(ImportError, match=r"spanhook\[websocket\]"):
        WebSocketCallbackHandler.connect("ws://127.0.0.1:9")


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="send"):
        WebSocketHandler(object())
    with pytest.raises(ValueError, match="unknown message types"):
        WebSocketHandler(type("S", (), {"send": lambda self, d: None})(), events={"tokens"})

    class AsyncConn:
        async def send(self, data: str) -> None: ...

    with pytest.raises(ValueError, match="event loop"):
        WebSocketHandler(AsyncConn())


def test_a_starlette_websocket_endpoint_served_by_uvicorn_streams_the_agent() -> None:
    """FastAPI/Starlette: the endpoint hands its ``WebSocket`` to the handler (text goes out
    through ``send_text``), served by a real uvicorn on 127.0.0.1, read by a real client."""
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    recs: list[Recorder] = []

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        question = await websocket.receive_text()
        rec = Recorder()
        recs.append(rec)
        handler = WebSocketHandler(websocket)
        await build_agent(verbose=False).arun(question, callbacks=[handler, rec])
        assert await handler.aflush(WAIT)
        await websocket.close()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[WebSocketRoute("/ask", endpoint)]),
            log_level="warning",
            ws="websockets-sansio",
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started

        with sconnect(f"ws://127.0.0.1:{port}/ask") as client:
            client.send(QUESTION)
            msgs: list[dict[str, Any]] = []
            while not msgs or msgs[-1]["type"] != "done":
                msgs.append(json.loads(client.recv(timeout=WAIT)))
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    check_agent_stream(msgs, recs[0], "84")


def test_a_langchain_tool_called_with_a_tool_call_sends_its_content_as_output(
    server: CollectServer,
) -> None:
    """LangGraph's ToolNode calls tools with a ToolCall: the tool returns a ToolMessage,
    whose content (not its repr) is the tool's output."""
    import spanhook.langchain
    from spanhook.langchain.demo import calculator

    spanhook.langchain.instrument()
    try:
        with sconnect(server.uri) as ws:
            handler = WebSocketHandler(ws)
            call = {"name": "calculator", "args": {"expression": "6 * 7"}, "id": "c1"}
            result = calculator.invoke({**call, "type": "tool_call"}, {"callbacks": [handler]})
            msgs = server.wait_done()
    finally:
        spanhook.langchain.uninstrument()
    assert result.content == "42"
    end = next(m for m in msgs if m["type"] == "end")
    assert (end["kind"], end["output"]) == ("tool", "42")


def test_a_langgraph_agent_request_ends_with_its_answer_as_output(server: CollectServer) -> None:
    """A LangGraph graph's output is its state ({"messages": [...]}): ``done`` carries the
    last message's text, the agent's answer."""
    import spanhook.langchain
    from spanhook.langchain.demo import build_graph

    spanhook.langchain.instrument()
    try:
        agent = build_graph()
        with sconnect(server.uri) as ws:
            handler = WebSocketHandler(ws)
            state = agent.invoke(
                {"messages": [("user", "What is 12 * (3 + 4)?")]}, {"callbacks": [handler]}
            )
            msgs = server.wait_done()
    finally:
        spanhook.langchain.uninstrument()
    answer = state["messages"][-1].content
    assert "84" in answer
    done = msgs[-1]
    assert (done["type"], done["ok"], done["output"]) == ("done", True, answer)


def test_a_retry_is_sent_with_its_attempt_and_error_type(server: CollectServer) -> None:
    with sconnect(server.uri) as ws:
        answer = FlakyLLM(max_retries=1).invoke("q", callbacks=[WebSocketHandler(ws)])
        msgs = server.wait_done()
    assert answer == "ok"
    assert [m["type"] for m in msgs] == ["start", "retry", "end", "done"]
    assert msgs[1] == {
        "type": "retry",
        "attempt": 1,
        "error_type": "ConnectionError",
        "run_id": msgs[0]["run_id"],
        "seq": 1,
    }


def test_a_langgraph_interrupt_is_sent_as_a_stopped_run_not_an_error(
    server: CollectServer,
) -> None:
    """``interrupt()`` pauses the graph: the node's run ends with its ``signal``, no error."""
    import spanhook.langchain
    from lc_app import build_approval_graph

    spanhook.langchain.instrument()
    try:
        app = build_approval_graph()
        with sconnect(server.uri) as ws:
            handler = WebSocketHandler(ws)
            config = {"configurable": {"thread_id": "t"}, "callbacks": [handler]}
            app.invoke({"item": "x", "answer": ""}, config)
            msgs = server.wait_done()
    finally:
        spanhook.langchain.uninstrument()
    assert "error" not in [m["type"] for m in msgs]
    (ask_end,) = [m for m in msgs if m["type"] == "end" and m["name"] == "ask"]
    assert ask_end["signal"] == "GraphInterrupt"
    assert msgs[-1]["type"] == "done" and msgs[-1]["ok"] is True
