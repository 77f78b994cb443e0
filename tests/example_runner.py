"""Test helpers: run the examples as the commands their READMEs give, ``python -m
examples.<name>`` from the repository root, in child processes (nothing in here is a test).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping

from collector_harness import REPO_ROOT, ManagedProcess, free_port

PYTHON = sys.executable


def example_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an example process: no OTel settings of the test runner, the
    repository on ``PYTHONPATH`` (the commands are ``python -m examples.<name>``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("NO_COLOR", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_example(
    name: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """``python -m examples.<name> <args>`` from the repository root; asserts it succeeded."""
    done = subprocess.run(
        [PYTHON, "-m", f"examples.{name}", *args],
        cwd=REPO_ROOT,
        env=example_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done


@contextlib.contextmanager
def serve_example(name: str, *args: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Run a server example on a free 127.0.0.1 port (``--port``); yields its base URL."""
    port = free_port()
    proc = ManagedProcess(
        name, [PYTHON, "-m", f"examples.{name}", "--port", str(port), *args], example_env(env)
    )
    try:
        proc.wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
        output = proc.output()
        assert "Traceback" not in output, output
