"""Render a finished run tree for the console: name, kind, duration, status, token usage."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from spanhook._color import bold, colored
from spanhook.tracing import attributes as attr


@dataclass
class Node:
    name: str
    kind: str
    duration_ns: int
    ok: bool
    error: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    children: list[Node] = field(default_factory=list)


def format_duration(ns: int) -> str:
    if ns < 1_000_000:
        return f"{ns / 1000:.0f} us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e9:.2f} s"


def node_from_span(span: ReadableSpan) -> Node:
    a = span.attributes or {}
    kind = a.get(attr.RUN_KIND) or span.kind.name.lower()
    ok = span.status.status_code != StatusCode.ERROR
    dur = (span.end_time or 0) - (span.start_time or 0)
    it, ot = a.get(attr.GEN_AI_USAGE_INPUT_TOKENS), a.get(attr.GEN_AI_USAGE_OUTPUT_TOKENS)
    return Node(
        name=span.name,
        kind=str(kind),
        duration_ns=max(0, dur),
        ok=ok,
        error="" if ok else (span.status.description or "error"),
        input_tokens=it if isinstance(it, int) else None,
        output_tokens=ot if isinstance(ot, int) else None,
    )


def tree_from_spans(spans: Iterable[ReadableSpan]) -> list[Node]:
    """Build node trees from spans (roots: spans whose parent is not among them)."""
    items = sorted(spans, key=lambda s: s.start_time or 0)
    nodes = {s.context.span_id: node_from_span(s) for s in items}
    roots: list[Node] = []
    for s in items:
        parent = s.parent.span_id if s.parent is not None else None
        if parent is not None and parent in nodes:
            nodes[parent].children.append(nodes[s.context.span_id])
        else:
            roots.append(nodes[s.context.span_id])
    return roots


def _line(node: Node, color: bool) -> str:
    status = (
        colored("OK", "green", color) if node.ok else colored(f"ERROR {node.error}", "red", color)
    )
    parts = [bold(node.name, color), f"[{node.kind}]", format_duration(node.duration_ns), status]
    if node.input_tokens is not None or node.output_tokens is not None:
        parts.append(f"tokens in={node.input_tokens or 0} out={node.output_tokens or 0}")
    return "  ".join(parts)


def render(roots: Sequence[Node], color: bool = False, title: str | None = None) -> str:
    """The tree as text, one line per run, children indented under their parent."""
    lines: list[str] = []
    if title:
        lines.append(title)

    def walk(node: Node, prefix: str, last: bool) -> None:
        branch = "└─ " if last else "├─ "
        lines.append(prefix + branch + _line(node, color))
        child_prefix = prefix + ("   " if last else "│  ")
        for i, child in enumerate(node.children):
            walk(child, child_prefix, i == len(node.children) - 1)

    for i, root in enumerate(roots):
        walk(root, "", i == len(roots) - 1)
    return "\n".join(lines)
