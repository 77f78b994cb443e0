"""``scripts/code_shape.py`` (the line and twin counts quoted for issue 8) on a small repo."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "code_shape.py"

MODULE = textwrap.dedent(
    '''\
    """Module docstring."""

    # a comment


    def invoke(x):
        return x


    async def ainvoke(x):
        return x


    class Run:
        __slots__ = ("a", "b")

        def _close(self):
            import os

            return os


        async def _aclose(self):
            pass

        def __enter__(self):
            pass

        async def __aenter__(self):
            pass
    '''
)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_counts_lines_twins_run_and_inner_imports(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text(MODULE)
    (tmp_path / "src" / "big.py").write_text("x = 1\n" * 401)
    (tmp_path / "notes.py").write_text("outside src: not counted\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "c")

    out = subprocess.run(
        [sys.executable, str(SCRIPT), "HEAD"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()

    # m.py: 30 lines, of which 15 code, 1 docstring, 1 comment, 13 blank; big.py: 401 code
    assert out[0] == "HEAD: src 431 lines (code 416, docstring 1, comment 1, blank 13)"
    # invoke/ainvoke (2 + 2 lines) and Run._close/_aclose (4 + 2); the dunders are not twins
    assert out[1] == "  twins: 2 pairs, 10 lines in both halves"
    assert out[2] == "  Run: 17 lines, 4 methods, 2 slots"
    assert out[3] == "  modules over 400 lines: src/big.py (401)"
    assert out[4] == "  imports inside functions: 1"
