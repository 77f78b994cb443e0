"""A small, real OpenAI-compatible HTTP server for tests (standard library only).

Usage::

    with OpenAIServer() as server:
        server.script(Text("hello world"), Error(429, retry_after=0.01))
        client = openai.OpenAI(base_url=server.url, api_key="sk-test-123")
        ...
        assert server.requests[0].body["model"] == "gpt-4o-mini"

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (legacy text
completions), both with and without ``stream: true`` (server-sent events over chunked
transfer encoding, ending with ``data: [DONE]``). Every request is recorded in
``server.requests``. Each POST to an endpoint pops the next scripted reply; when the script
is empty the reply is ``Text("echo: <last user message or prompt>")``.

Requests without ``Authorization: Bearer ...`` get 401, malformed JSON gets 400 and
unknown paths get 404, all with OpenAI-style error bodies; none of them consumes a
scripted reply.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from serving import QuietHandler, Served, serve_in_thread

__all__ = [
    "Broken",
    "Error",
    "Hang",
    "OpenAIServer",
    "Recorded",
    "Reply",
    "Text",
    "ToolCall",
]

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
_DEFAULT_CHAT_ID = "chatcmpl-test-1"
_DEFAULT_COMPLETION_ID = "cmpl-test-1"


# --------------------------------------------------------------------------- replies


@dataclass
class Text:
    """An assistant text answer (chat) or a text completion (legacy completions).

    ``completion_tokens`` defaults to the number of whitespace-separated words of
    ``content``; ``model`` defaults to the request's model; ``chunks`` is how ``content``
    is split when streaming (default: words keeping their trailing whitespace);
    ``chunk_delay`` is a pause (seconds) before each streamed content piece after the
    first, to make incremental delivery observable. On ``/v1/completions`` the default
    ``response_id`` is reported as ``"cmpl-test-1"``.
    """

    content: str
    finish_reason: str = "stop"
    prompt_tokens: int = 7
    completion_tokens: int | None = None
    model: str | None = None
    response_id: str = _DEFAULT_CHAT_ID
    chunks: list[str] | None = None
    chunk_delay: float = 0.0

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return split_words(self.content)

    def usage(self) -> dict[str, int]:
        completion = (
            len(self.content.split()) if self.completion_tokens is None else self.completion_tokens
        )
        return _usage(self.prompt_tokens, completion)


@dataclass
class ToolCall:
    """A single function tool call (chat only); finish_reason ``"tool_calls"``.

    ``arguments`` is JSON text; ``arg_chunks`` is how it is split across stream deltas
    (default: three roughly equal pieces).
    """

    name: str
    arguments: str
    call_id: str = "call_1"
    arg_chunks: list[str] | None = None
    prompt_tokens: int = 7
    completion_tokens: int = 5

    def pieces(self) -> list[str]:
        if self.arg_chunks is not None:
            return list(self.arg_chunks)
        return split_even(self.arguments, 3)

    def usage(self) -> dict[str, int]:
        return _usage(self.prompt_tokens, self.completion_tokens)


@dataclass
class Error:
    """An HTTP error with an OpenAI-style JSON error body (and ``retry-after`` if given)."""

    status: int
    message: str = "boom"
    type: str = "server_error"
    retry_after: float | None = None


@dataclass
class Hang:
    """Sleep ``seconds`` (interrupted by server shutdown), then send the default reply."""

    seconds: float


@dataclass
class Broken:
    """Fail mid-response.

    Streaming: send the SSE headers and one content chunk (``content``), then close the
    connection without ``[DONE]`` (and without the terminating HTTP chunk). Non-stream:
    close the connection without any response.
    """

    content: str = "partial"


Reply = Text | ToolCall | Error | Hang | Broken


@dataclass
class Recorded:
    """One request as received: path (with query), lower-cased headers, JSON body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def split_words(content: str) -> list[str]:
    """``"a b c"`` -> ``["a ", "b ", "c"]``; the pieces always join back to ``content``."""
    pieces = re.findall(r"\s*\S+\s*", content)
    if not pieces and content:
        return [content]
    return pieces


def split_even(text: str, parts: int) -> list[str]:
    """Split ``text`` into ``parts`` roughly equal non-empty pieces (fewer if it is short)."""
    bounds = [round(i * len(text) / parts) for i in range(parts + 1)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _error_body(message: str, type_: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": None}}


def _text_of(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text_of(message.get("content"))
    return ""


def _first_prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt else ""
    return _text_of(prompt)


# --------------------------------------------------------------------------- handler


class _Handler(QuietHandler):
    server_version = "OpenAITestServer/1.0"
    timeout = 10  # idle keep-alive connections are dropped after this
    server: _HTTPServer

    # -- plumbing ---------------------------------------------------------------

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_test_1")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, status: int, message: str, type_: str) -> None:
        self._send_json(status, _error_body(message, type_))

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", "req_test_1")
        self.end_headers()
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._write_chunk(f"data: {text}\n\n".encode())

    def _end_stream(self) -> None:
        self._event("[DONE]")
        self._write_chunk(b"")  # terminating chunk

    def _pause(self, seconds: float) -> bool:
        """Sleep (interruptible by shutdown); False, with the connection dropped, on shutdown."""
        if seconds > 0 and self.server.owner._stopping.wait(seconds):
            self._abort()
            return False
        return True

    def _abort(self) -> None:
        """Close the connection now, without (the rest of) a response."""
        self.close_connection = True

    # -- request dispatch -------------------------------------------------------

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path = self.path.split("?", 1)[0]
        body: dict[str, Any] = {}
        malformed = False
        if raw:
            try:
                parsed = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                malformed = True
            else:
                if isinstance(parsed, dict):
                    body = parsed
                else:
                    malformed = True
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.owner._record(Recorded(path=self.path, headers=headers, body=body))

        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            self._send_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
            )
            return
        if self.command != "POST" or path not in (CHAT_PATH, COMPLETIONS_PATH):
            self._send_error(404, f"Invalid URL ({self.command} {path})", "invalid_request_error")
            return
        if malformed or not raw:
            self._send_error(
                400,
                "We could not parse the JSON body of your request.",
                "invalid_request_error",
            )
            return

        reply = self.server.owner._next_reply()
        if isinstance(reply, Hang):
            if self.server.owner._stopping.wait(reply.seconds):
                self._abort()  # server shutting down: drop the request
                return
            reply = None
        if reply is None:
            reply = self._default_reply(path, body)

        stream = body.get("stream") is True
        if isinstance(reply, Error):
            headers_out = {}
            if reply.retry_after is not None:
                headers_out["retry-after"] = f"{reply.retry_after:g}"
            self._send_json(reply.status, _error_body(reply.message, reply.type), headers_out)
        elif isinstance(reply, Broken) and not stream:
            self._abort()
        elif path == CHAT_PATH:
            self._chat(body, reply, stream)
        else:
            self._completion(body, reply, stream)

    @staticmethod
    def _default_reply(path: str, body: dict[str, Any]) -> Text:
        source = _last_user_text(body) if path == CHAT_PATH else _first_prompt(body)
        return Text(f"echo: {source}")

    # -- /v1/chat/completions ---------------------------------------------------

    def _chat(self, body: dict[str, Any], reply: Text | ToolCall | Broken, stream: bool) -> None:
        model = str(body.get("model") or "test-model")
        created = int(time.time())
        if isinstance(reply, Text):
            model = reply.model or model
            response_id = reply.response_id
        else:
            response_id = _DEFAULT_CHAT_ID
        if stream:
            self._chat_stream(body, reply, model, created, response_id)
            return
        assert not isinstance(reply, Broken)
        message: dict[str, Any]
        if isinstance(reply, Text):
            message = {"role": "assistant", "content": reply.content}
            finish_reason = reply.finish_reason
        else:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": reply.call_id,
                        "type": "function",
                        "function": {"name": reply.name, "arguments": reply.arguments},
                    }
                ],
            }
            finish_reason = "tool_calls"
        self._send_json(
            200,
            {
                "id": response_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": reply.usage(),
            },
        )

    def _chat_stream(
        self,
        body: dict[str, Any],
        reply: Text | ToolCall | Broken,
        model: str,
        created: int,
        response_id: str,
    ) -> None:
        include_usage = _include_usage(body)

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "id": response_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "finish_reason": finish_reason,
                        "logprobs": None,
                    }
                ],
            }
            if include_usage:
                payload["usage"] = None
            return payload

        self._start_stream()
        if isinstance(reply, Broken):
            self._event(chunk({"role": "assistant", "content": reply.content}))
            self._abort()
            return
        self._event(chunk({"role": "assistant", "content": ""}))
        if isinstance(reply, Text):
            for i, piece in enumerate(reply.pieces()):
                if i and not self._pause(reply.chunk_delay):
                    return
                self._event(chunk({"content": piece}))
            finish_reason = reply.finish_reason
        else:
            self._event(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": reply.call_id,
                                "type": "function",
                                "function": {"name": reply.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for piece in reply.pieces():
                self._event(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
            finish_reason = "tool_calls"
        self._event(chunk({}, finish_reason))
        if include_usage:
            self._event(
                {
                    "id": response_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": reply.usage(),
                }
            )
        self._end_stream()

    # -- /v1/completions --------------------------------------------------------

    def _completion(
        self, body: dict[str, Any], reply: Text | ToolCall | Broken, stream: bool
    ) -> None:
        if isinstance(reply, ToolCall):
            self._send_error(
                400,
                "Tool calls are not supported by /v1/completions.",
                "invalid_request_error",
            )
            return
        model = str(body.get("model") or "test-model")
        created = int(time.time())
        response_id = _DEFAULT_COMPLETION_ID
        if isinstance(reply, Text):
            model = reply.model or model
            if reply.response_id != _DEFAULT_CHAT_ID:
                response_id = reply.response_id
        if not stream:
            assert isinstance(reply, Text)
            self._send_json(
                200,
                {
                    "id": response_id,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "text": reply.content,
                            "index": 0,
                            "logprobs": None,
                            "finish_reason": reply.finish_reason,
                        }
                    ],
                    "usage": reply.usage(),
                },
            )
            return
        include_usage = _include_usage(body)

        def chunk(text: str, finish_reason: str | None = None) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "id": response_id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [
                    {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                payload["usage"] = None
            return payload

        self._start_stream()
        if isinstance(reply, Broken):
            self._event(chunk(reply.content))
            self._abort()
            return
        for i, piece in enumerate(reply.pieces()):
            if i and not self._pause(reply.chunk_delay):
                return
            self._event(chunk(piece))
        self._event(chunk("", reply.finish_reason))
        if include_usage:
            self._event(
                {
                    "id": response_id,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": reply.usage(),
                }
            )
        self._end_stream()


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away (timeouts, broken pipes, resets)
            return
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------- server


class OpenAIServer(Served):
    """An OpenAI-compatible server on 127.0.0.1 (ephemeral port), run in a thread.

    Use as a context manager; ``url`` is the SDK ``base_url`` (ends in ``/v1``).
    """

    host: str = "127.0.0.1"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: collections.deque[Reply] = collections.deque()
        self._stopping = threading.Event()
        self.requests: list[Recorded] = []
        self._httpd = _HTTPServer((self.host, 0), _Handler)
        self._httpd.owner = self
        self.port: int = int(self._httpd.server_address[1])
        self.url = f"http://{self.host}:{self.port}/v1"
        self._thread: threading.Thread | None = None

    def script(self, *replies: Reply) -> None:
        """Queue replies; each request to a POST endpoint consumes the next one."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies have not been consumed yet."""
        with self._lock:
            return len(self._replies)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = serve_in_thread(self._httpd, 0.05, f"openai-test-server-{self.port}")

    def stop(self) -> None:
        self._stopping.set()  # wakes any Hang
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    close = stop

    # -- used by the handler ----------------------------------------------------

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._replies.popleft() if self._replies else None
