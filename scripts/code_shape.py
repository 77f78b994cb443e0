"""The shape of ``src/`` at one or more git revisions: line counts and the twin measures.

    python scripts/code_shape.py 57f3e96 16448e9 HEAD

For each revision (read with ``git archive``, so the working tree is not touched):

- lines in ``src/`` split into code, docstrings, comments and blank lines;
- sync/async twin pairs and the lines of both halves, counted as the architecture study
  counts them (a function next to its ``a``/``_a`` twin in the same class or module; dunders
  and ``AsyncCallbackHandler`` not counted);
- the class named ``Run``: lines, methods, slots;
- modules over 400 lines and imports inside functions.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Shape:
    lines: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("code", "docstring", "comment", "blank"), 0)
    )
    twin_pairs: int = 0
    twin_lines: int = 0
    run_class: tuple[int, int, int] = (0, 0, 0)
    big_modules: list[tuple[str, int]] = field(default_factory=list)
    inner_imports: int = 0


def sources(rev: str) -> Iterator[tuple[str, str]]:
    blob = subprocess.run(
        ["git", "archive", "--format=tar", rev, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".py"):
                data = tar.extractfile(member)
                assert data is not None
                yield member.name, data.read().decode()


def _docstring_lines(tree: ast.Module) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                out.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return out


def _twins(body: list[ast.stmt]) -> Iterator[int]:
    """The lines of each twin pair among ``body``'s functions."""
    fns = {n.name: n for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for name, fn in fns.items():
        if name.startswith("__"):
            continue
        candidates = ["a" + name] + (["_a" + name[1:]] if name.startswith("_") else [])
        for twin in candidates:
            if twin in fns:
                other = fns[twin]
                yield (fn.end_lineno or 0) - fn.lineno + (other.end_lineno or 0) - other.lineno + 2
                break


def measure(rev: str) -> Shape:
    shape = Shape()
    for path, text in sources(rev):
        lines = text.splitlines()
        tree = ast.parse(text)
        docs = _docstring_lines(tree)
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            kind = (
                "blank"
                if not stripped
                else "docstring"
                if number in docs
                else "comment"
                if stripped.startswith("#")
                else "code"
            )
            shape.lines[kind] += 1
        if len(lines) > 400:
            shape.big_modules.append((path, len(lines)))
        scopes: list[list[ast.stmt]] = [tree.body]
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name != "AsyncCallbackHandler":
                scopes.append(node.body)
            if isinstance(node, ast.ClassDef) and node.name == "Run":
                methods = [
                    n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                ]
                slots = next(
                    (
                        len(n.value.elts)
                        for n in node.body
                        if isinstance(n, ast.Assign)
                        and any(getattr(t, "id", "") == "__slots__" for t in n.targets)
                        and isinstance(n.value, ast.Tuple | ast.List)
                    ),
                    0,
                )
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                shape.run_class = (size, len(methods), slots)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                shape.inner_imports += sum(
                    isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(node)
                )
        for body in scopes:
            pairs = list(_twins(body))
            shape.twin_pairs += len(pairs)
            shape.twin_lines += sum(pairs)
    return shape


def main(revs: list[str]) -> None:
    for rev in revs or ["HEAD"]:
        s = measure(rev)
        total = sum(s.lines.values())
        split = ", ".join(f"{k} {v:,}" for k, v in s.lines.items())
        print(f"{rev}: src {total:,} lines ({split})")
        print(f"  twins: {s.twin_pairs} pairs, {s.twin_lines:,} lines in both halves")
        size, methods, slots = s.run_class
        print(f"  Run: {size} lines, {methods} methods, {slots} slots")
        big = ", ".join(f"{p} ({n})" for p, n in s.big_modules) or "none"
        print(f"  modules over 400 lines: {big}")
        print(f"  imports inside functions: {s.inner_imports}")


if __name__ == "__main__":
    main(sys.argv[1:])
