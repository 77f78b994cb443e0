"""``spanhook demo``: offline, deterministic, an agent with a tool call, verbose output and
its span tree; exit status 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from spanhook.cli import main


def run_demo_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-m", "spanhook.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def normalise(text: str) -> str:
    text = re.sub(r"trace [0-9a-f]{32}", "trace <id>", text)
    return re.sub(r"\d+(\.\d+)? (us|ms|s)\b", "<t>", text)


def test_demo_runs_offline_and_deterministically() -> None:
    first = run_demo_process()
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "> Entering new demo-agent chain..." in out
    assert "Action: calculator\nAction Input: 12 * (3 + 4)" in out
    assert "Observation: 84" in out
    assert "Final Answer: 84" in out
    assert "Answer: 84" in out
    tree = out[out.index("Span tree") :]
    assert re.search(r"invoke_agent demo-agent  \[agent\]", tree)
    assert tree.count("text_completion spanhook-offline-1  [llm]") == 2
    assert "execute_tool calculator  [tool]" in tree
    assert "\x1b[" not in out  # not a terminal: no colour
    second = run_demo_process()
    assert normalise(second.stdout) == normalise(out)


def test_demo_question_option() -> None:
    result = run_demo_process("--question", "What is 2 ** 8?")
    assert result.returncode == 0, result.stderr
    assert "Answer: 256" in result.stdout


def test_cli_rejects_unknown_commands(capsys: object) -> None:
    try:
        main(["frobnicate"])
    except SystemExit as e:
        assert e.code == 2
    else:  # pragma: no cover
        raise AssertionError("argparse should have exited")
