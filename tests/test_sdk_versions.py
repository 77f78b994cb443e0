"""The span-start paths that lean on SDK internals (``runtime.spans``) against every SDK
release the lean start claims (``LEAN_SDK``), not only the one installed here: their
conformance tests run again in a venv holding the oldest claimed release, built once and
kept under the project's cache (``SPANHOOK_CACHE_DIR``, default ``~/.cache/spanhook``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector_harness import REPO_ROOT

OLDEST_LEAN_SDK = "1.44.0"
CONFORMANCE = ["tests/test_span_lean_start.py", "tests/test_span_start.py"]


def sdk_venv(version: str) -> Path:
    """A venv with ``opentelemetry-api/sdk/exporter-otlp==version`` and pytest (the project
    itself comes from ``PYTHONPATH``, so the venv does not go stale when it changes)."""
    cache = Path(os.environ.get("SPANHOOK_CACHE_DIR", Path.home() / ".cache" / "spanhook"))
    venv = cache / f"otel-sdk-{version}" / "venv"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        packages = [f"opentelemetry-{p}=={version}" for p in ("api", "sdk", "exporter-otlp")]
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *packages, "pytest"],
            check=True,
            timeout=600,
        )
        (venv / ".complete").touch()
    return python


def test_the_lean_start_conformance_tests_pass_on_the_oldest_claimed_sdk() -> None:
    try:
        python = sdk_venv(OLDEST_LEAN_SDK)
    except (subprocess.SubprocessError, OSError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"could not build a venv with OpenTelemetry SDK {OLDEST_LEAN_SDK}: {exc}")
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src'}{os.pathsep}{REPO_ROOT / 'tests'}"}
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import opentelemetry.sdk.version as v, spanhook.runtime.spans as s;"
            "print(v.__version__, s.LEAN_SDK)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    assert probe.stdout.split() == [OLDEST_LEAN_SDK, "True"], probe.stdout + probe.stderr
    run = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *CONFORMANCE],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
