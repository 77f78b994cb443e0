"""spanhook's built-in deterministic offline model: no network, same answer every time.

It does arithmetic (``"1 + 2 = "`` -> ``"3"``), drives a ReAct agent through a tool call
(it reads the tool list and the scratchpad in the prompt, picks a tool, then answers from
the observation) and streams its answer word by word with real token counts.
"""

from __future__ import annotations

import asyncio
import operator
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry.trace import SpanKind

from spanhook.language_models import ModelOptions
from spanhook.llms.base import LLM, areporting, reporting
from spanhook.primitive import AsyncRunManager
from spanhook.runtime.run import Run
from spanhook.schema import GenerationChunk

if TYPE_CHECKING:
    from typing_extensions import Unpack

C = TypeVar("C")

MODEL_NAME = "spanhook-offline-1"
_TOKEN = re.compile(r"\s*\S+|\s+")
_ARITH = re.compile(r"(-?\d+(?:\.\d+)?(?:\s*(?:\*\*|[-+*/%])\s*\(?\s*-?\d+(?:\.\d+)?\s*\)?)+)")
_ARITH_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|(\*\*|[-+*/%()]))")
_BINARY: dict[str, Any] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}


def tokenize(text: str) -> list[str]:
    """Split text into tokens: each word with the white space before it."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(text.split())


def evaluate(expression: str) -> float | int:
    """Evaluate an arithmetic expression safely: numbers, ``+ - * / % **`` and parentheses,
    with Python's precedence (a small recursive-descent parser; nothing is executed)."""
    tokens: list[str] = []
    pos, text = 0, expression.strip()
    while pos < len(text):
        match = _ARITH_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"not an arithmetic expression: {expression!r}")
        tokens.append(match.group(1) or match.group(2))
        pos = match.end()
    if not tokens:
        raise ValueError(f"not an arithmetic expression: {expression!r}")
    at = 0

    def peek() -> str | None:
        return tokens[at] if at < len(tokens) else None

    def take() -> str:
        nonlocal at
        token = peek()
        if token is None:
            raise ValueError(f"incomplete arithmetic expression: {expression!r}")
        at += 1
        return token

    def expr() -> Any:  # expr := term (('+'|'-') term)*
        value = term()
        while peek() in ("+", "-"):
            value = _BINARY[take()](value, term())
        return value

    def term() -> Any:  # term := factor (('*'|'/'|'%') factor)*
        value = factor()
        while peek() in ("*", "/", "%"):
            value = _BINARY[take()](value, factor())
        return value

    def factor() -> Any:  # factor := ('+'|'-') factor | power
        if peek() in ("+", "-"):
            return -factor() if take() == "-" else factor()
        return power()

    def power() -> Any:  # power := atom ('**' factor)?
        base = atom()
        if peek() == "**":
            take()
            exponent = factor()
            if abs(exponent) > 64:
                raise ValueError("exponent too large")
            return base**exponent
        return base

    def atom() -> Any:  # atom := NUMBER | '(' expr ')'
        token = take()
        if token == "(":
            value = expr()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expression!r}")
            return value
        if token[0].isdigit():
            return float(token) if "." in token else int(token)
        raise ValueError(f"not an arithmetic expression: {expression!r}")

    value = expr()
    if at != len(tokens):
        raise ValueError(f"not an arithmetic expression: {expression!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # type: ignore[no-any-return]


def _tools_in(prompt: str) -> list[str]:
    block = re.search(r"following tools:\s*\n(.*?)\n\s*\n", prompt, re.S)
    if not block:
        return []
    return [m.group(1) for m in re.finditer(r"^\s*([\w.-]+):", block.group(1), re.M)]


def respond(prompt: str) -> str:
    """The offline model's deterministic answer to ``prompt``."""
    tools = _tools_in(prompt)
    if tools and "Question:" in prompt:
        question = prompt.rsplit("Question:", 1)[1].split("\n", 1)[0].strip()
        after = prompt.rsplit("Question:", 1)[1]
        observations = re.findall(r"Observation:\s*(.*)", after)
        if observations:
            answer = observations[-1].strip()
            return f" I now know the final answer.\nFinal Answer: {answer}"
        expr = _ARITH.search(question)
        calc = next((t for t in tools if "calc" in t.lower() or "math" in t.lower()), None)
        if expr and calc:
            return (
                f" I need to compute {expr.group(1).strip()}, so I will use the {calc} tool.\n"
                f"Action: {calc}\nAction Input: {expr.group(1).strip()}"
            )
        named = next((t for t in tools if t.lower() in question.lower()), tools[0])
        return f" I will ask the {named} tool.\nAction: {named}\nAction Input: {question}"
    expr = _ARITH.search(prompt)
    if expr:
        try:
            return str(evaluate(expr.group(1)))
        except (ValueError, ZeroDivisionError, OverflowError):
            pass
    last = next((line.strip() for line in reversed(prompt.splitlines()) if line.strip()), "")
    return f"You said: {last}" if last else "Hello from spanhook's offline model."


def answer(prompt: str, stop: list[str] | None) -> str:
    """:func:`respond`'s answer, cut before the first stop sequence in it."""
    text = respond(prompt)
    for s in stop or []:
        if s in text:
            text = text[: text.index(s)]
    return text


def token_usage(prompt: str, text: str) -> dict[str, int]:
    """The ``token_usage`` of answering ``prompt`` with ``text``."""
    prompt_tokens, completion_tokens = count_tokens(prompt), count_tokens(text)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _check_fail(i: int, fail_after: int | None) -> None:
    if fail_after is not None and i >= fail_after:
        raise RuntimeError(f"offline model failed after {fail_after} tokens (fail_after)")


def paced(chunks: Iterable[C], delay: float, fail_after: int | None = None) -> Iterator[C]:
    """``chunks`` one by one, each ``delay`` seconds after the last; with ``fail_after``,
    the stream fails in place of chunk number ``fail_after`` (counting from 0)."""
    for i, chunk in enumerate(chunks):
        _check_fail(i, fail_after)
        if delay:
            time.sleep(delay)
        yield chunk


async def apaced(
    chunks: Iterable[C], delay: float, fail_after: int | None = None
) -> AsyncIterator[C]:
    """The async twin of :func:`paced`."""
    for i, chunk in enumerate(chunks):
        _check_fail(i, fail_after)
        if delay:
            await asyncio.sleep(delay)
        yield chunk


class OfflineLLM(LLM):
    """The built-in deterministic model (the default of the demo and the tests).

    ``delay`` (seconds per token) makes streaming visible; ``fail_after`` (tokens) makes a
    stream fail mid-way, for error-path tests.
    """

    model_name = MODEL_NAME
    span_kind = SpanKind.INTERNAL

    def __init__(
        self,
        *,
        delay: float = 0.0,
        fail_after: int | None = None,
        **options: Unpack[ModelOptions],
    ) -> None:
        super().__init__(**options)
        self.delay = delay
        self.fail_after = fail_after

    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": 0.0}

    def _usage(self, prompt: str, text: str) -> dict[str, int]:
        return token_usage(prompt, text)

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> str:
        return answer(prompt, stop)

    async def _acall(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncRunManager | None = None,
        **kwargs: Any,
    ) -> str:
        return answer(prompt, stop)

    def _chunks(self, prompt: str, stop: list[str] | None) -> list[GenerationChunk]:
        text = answer(prompt, stop)
        chunks = [GenerationChunk(text=t) for t in tokenize(text)]
        if chunks:
            chunks[-1].generation_info = {
                "finish_reason": "stop",
                "token_usage": token_usage(prompt, text),
            }
        return chunks

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: Run | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        chunks = paced(self._chunks(prompt, stop), self.delay, self.fail_after)
        yield from reporting(chunks, run_manager)

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncRunManager | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        chunks = apaced(self._chunks(prompt, stop), self.delay, self.fail_after)
        async for chunk in areporting(chunks, run_manager):
            yield chunk
