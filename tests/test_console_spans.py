"""Console spans are a readable tree (name, kind, duration, status, token usage), not JSON:
``OTEL_TRACES_EXPORTER=console`` and ``verbose=True``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

import spanhook
from helpers import Recorder
from spanhook.demo import DEFAULT_QUESTION, build_agent
from spanhook.runtime.run import current_run

LINE = re.compile(
    r"^(?P<indent>(?:│  |   )*)(?:├─|└─) (?P<name>.+?)  \[(?P<kind>\w+)\]  "
    r"(?P<duration>\d+(?:\.\d+)? (?:us|ms|s))  (?P<status>OK|ERROR .+?)"
    r"(?:  tokens in=(?P<tin>\d+) out=(?P<tout>\d+))?$"
)


@pytest.fixture(autouse=True)
def _shutdown() -> Iterator[None]:
    yield
    spanhook.shutdown(timeout=2.0)


def tree_after(out: str, title: str) -> list[dict[str, Any]]:
    """The tree printed under ``title``: one dict per line (depth, name, kind, ...)."""
    lines = out.split(title, 1)[1].strip("\n").splitlines()
    rows = []
    for line in lines:
        m = LINE.match(line)
        if m is None:
            break
        row: dict[str, Any] = m.groupdict()
        row["depth"] = len(row.pop("indent")) // 3
        rows.append(row)
    return rows


def assert_not_json(out: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    assert not any(line.lstrip().startswith(("{", "}", '"')) for line in out.splitlines())


class TraceIds(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.trace_id = ""

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        run = current_run()
        assert run is not None
        self.trace_id = run.trace_id
        super().on_chain_start(*args, **kwargs)  # type: ignore[misc]


def check_demo_tree(rows: list[dict[str, Any]], rec: Recorder) -> None:
    usage = [e.args[0].llm_output["token_usage"] for e in rec.of("on_llm_end")]
    assert [(r["depth"], r["name"], r["kind"], r["status"]) for r in rows] == [
        (0, "invoke_agent demo-agent", "agent", "OK"),
        (1, "text_completion spanhook-offline-1", "llm", "OK"),
        (1, "execute_tool calculator", "tool", "OK"),
        (1, "text_completion spanhook-offline-1", "llm", "OK"),
    ]
    tokens = [(int(r["tin"]), int(r["tout"])) for r in rows if r["kind"] == "llm"]
    assert tokens == [(u["prompt_tokens"], u["completion_tokens"]) for u in usage]
    assert rows[0]["tin"] is None and rows[2]["tin"] is None  # no usage on agent and tool lines


def test_console_exporter_prints_a_span_tree(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    spanhook.configure()
    rec = TraceIds()
    assert build_agent(verbose=False).run(DEFAULT_QUESTION, callbacks=[rec]) == "84"
    assert spanhook.force_flush(timeout=5.0)
    out = capsys.readouterr().out
    title = f"Trace {rec.trace_id}:"
    assert title in out
    check_demo_tree(tree_after(out, title), rec)
    assert_not_json(out)


def test_console_exporter_shows_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    spanhook.configure()
    rec = TraceIds()
    with pytest.raises(ZeroDivisionError):
        build_agent(verbose=False).run("What is 1 / 0?", callbacks=[rec])
    assert spanhook.force_flush(timeout=5.0)
    out = capsys.readouterr().out
    rows = tree_after(out, f"Trace {rec.trace_id}:")
    assert [(r["depth"], r["name"], r["status"]) for r in rows] == [
        (0, "invoke_agent demo-agent", "ERROR ZeroDivisionError: division by zero"),
        (1, "text_completion spanhook-offline-1", "OK"),
        (1, "execute_tool calculator", "ERROR ZeroDivisionError: division by zero"),
    ]


def test_verbose_prints_the_span_tree_without_any_otel_setup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rec = TraceIds()
    assert build_agent(verbose=True).run(DEFAULT_QUESTION, callbacks=[rec]) == "84"
    out = capsys.readouterr().out
    assert "> Entering new demo-agent chain..." in out
    title = f"Span tree (trace {rec.trace_id}):"
    assert title in out
    check_demo_tree(tree_after(out, title), rec)
    assert_not_json(out)
