"""Test helpers: a real Arize Phoenix server on 127.0.0.1, its GraphQL API, and pages read
with Debian's headless Chromium (nothing in here is a test).

Phoenix lives in its own venv made by ``scripts/install-phoenix.sh`` (``scripts/test.sh`` runs
it, and ``scripts/install-chromium.sh``); without them the viewer tests skip locally and fail
under CI.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from collector_harness import (
    REPO_ROOT,
    ManagedProcess,
    _cache_dir,
    _child_env,
    _script_setting,
    free_port,
    wait_until,
)

INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-phoenix.sh"
SERVE_SCRIPT = REPO_ROOT / "scripts" / "phoenix_serve.py"


def _missing(message: str) -> NoReturn:
    fail: Callable[[str], NoReturn] = pytest.fail if os.environ.get("CI") else pytest.skip
    fail(message)


def phoenix_python() -> str:
    """The Python of Phoenix's venv; skip (fail under CI) when it is not installed.
    ``SPANHOOK_PHOENIX_PYTHON`` overrides the lookup."""
    override = os.environ.get("SPANHOOK_PHOENIX_PYTHON")
    if override:
        return override
    version = _script_setting(INSTALL_SCRIPT, "PHOENIX_VERSION")
    venv = _cache_dir() / f"phoenix-{version}" / "venv"
    if (venv / ".spanhook-installed").is_file():
        return str(venv / "bin" / "python")
    _missing(f"Arize Phoenix {version} is not installed: run `bash scripts/install-phoenix.sh`")


def chromium() -> str:
    """Debian's Chromium; skip (fail under CI) when it is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    _missing("chromium not found: run `bash scripts/install-chromium.sh` (root, apt)")


@dataclass
class PhoenixServer:
    http_port: int
    grpc_port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.load(response)
        if answer.get("errors"):
            raise AssertionError(f"Phoenix GraphQL errors: {answer['errors']}")
        data: dict[str, Any] = answer["data"]
        return data

    def project_id(self, name: str) -> str | None:
        with urllib.request.urlopen(f"{self.url}/v1/projects", timeout=30) as response:
            projects = json.load(response)["data"]
        return next((p["id"] for p in projects if p["name"] == name), None)

    def spans(self, project: str) -> list[dict[str, Any]]:
        """Every span Phoenix stored for ``project``, as its GraphQL API shows them, with
        ``attributes`` decoded (Phoenix nests them by their dotted names)."""
        pid = self.project_id(project)
        if pid is None:
            return []
        data = self.graphql(PROJECT_SPANS, id=pid)
        spans = [edge["node"] for edge in data["node"]["spans"]["edges"]]
        for span in spans:
            span["attributes"] = json.loads(span["attributes"])
        return spans

    def sessions(self, project: str) -> list[dict[str, Any]]:
        pid = self.project_id(project)
        assert pid is not None, f"no Phoenix project {project!r}"
        data = self.graphql(PROJECT_SESSIONS, id=pid)
        return [edge["node"] for edge in data["node"]["sessions"]["edges"]]

    def wait_for_spans(self, project: str, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Phoenix ingests in the background: poll until ``n`` spans are stored."""
        return wait_until(
            lambda: spans if len(spans := self.spans(project)) >= n else None,
            timeout=timeout,
            interval=0.5,
            message=f"{n} spans in Phoenix project {project!r}",
        )


PROJECT_SPANS = """
query ($id: ID!) { node(id: $id) { ... on Project { spans(first: 1000) { edges { node {
  name spanKind statusCode parentId context { traceId spanId }
  input { value mimeType } output { value mimeType } metadata userId numDocuments
  tokenCountPrompt tokenCountCompletion tokenCountTotal cumulativeTokenCountTotal attributes
} } } } } }
"""
PROJECT_SESSIONS = """
query ($id: ID!) { node(id: $id) { ... on Project { sessions(first: 100) { edges { node {
  sessionId numTraces firstInput { value } lastOutput { value }
} } } } } }
"""


@contextlib.contextmanager
def run_phoenix(python: str, start_timeout: float = 240.0) -> Iterator[PhoenixServer]:
    """Phoenix on fresh ports of 127.0.0.1 with a throw-away working directory (SQLite)."""
    http_port, grpc_port = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="spanhook-phoenix-")
    env = _child_env(
        {
            "PHOENIX_WORKING_DIR": workdir,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(http_port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_AGENTS_DISABLE_BASH": "true",
        }
    )
    process = ManagedProcess("phoenix", [python, str(SERVE_SCRIPT)], env)
    try:
        process.wait_for_port(http_port, timeout=start_timeout)
        process.wait_for_port(grpc_port, timeout=30.0)
        yield PhoenixServer(http_port, grpc_port, process)
    finally:
        process.stop(timeout=15.0)
        shutil.rmtree(workdir, ignore_errors=True)


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as in ``/proc/net/tcp*``) of TCP sockets listening on
    ``port`` (Linux)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


#: 127.0.0.1 in /proc/net/tcp, and as an IPv4-mapped address in /proc/net/tcp6.
LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}

_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def rendered_text(url: str, budget_ms: int = 15_000) -> str:
    """The text a person sees on ``url`` once its scripts ran: Chromium's DOM after
    ``budget_ms`` of virtual time, without scripts, styles and tags."""
    profile = tempfile.mkdtemp(prefix="spanhook-chromium-")
    try:
        result = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1600,1000",
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if result.returncode != 0:
        raise AssertionError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    text = _TAG.sub("\n", _SCRIPT_OR_STYLE.sub("", result.stdout))
    return "\n".join(line.strip() for line in html.unescape(text).splitlines() if line.strip())
