"""``spanhook demo --langchain``: the offline agent as a LangGraph app, its verbose output
and span tree; a clear message without the extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def _run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "spanhook.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_demo_langchain_runs_the_langgraph_agent_offline() -> None:
    done = _run("demo", "--langchain")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "> Entering new demo-agent chain..." in out
    assert "Answer: The answer is 84." in out
    tree = out[out.index("Span tree") :]
    for line in (
        "invoke_agent demo-agent  [agent]",
        "chat spanhook-offline-chat  [chat_model]",
        "execute_tool calculator  [tool]",
    ):
        assert line in tree
    assert tree.count("chat spanhook-offline-chat") == 2


def test_demo_langchain_without_the_extra_says_what_to_install() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["langgraph"] = None  # as if it were not installed
        from spanhook.cli import main
        sys.exit(main(["demo", "--langchain"]))
        """
    )
    done = _run(code=code)
    assert done.returncode == 2
    assert "needs langgraph: pip install 'spanhook[langchain]'" in done.stderr
