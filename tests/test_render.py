"""The console span tree: one line per run, children under their parent."""

from __future__ import annotations

from spanhook.tracing.render import Node, format_duration, render


def test_durations_pick_a_readable_unit() -> None:
    assert format_duration(850_000) == "850 us"
    assert format_duration(12_300_000) == "12.3 ms"
    assert format_duration(2_500_000_000) == "2.50 s"


def test_tree_lines_show_kind_duration_status_and_tokens() -> None:
    tool = Node("execute_tool calc", "tool", 200_000, ok=False, error="ValueError: bad")
    llm = Node("chat m", "chat_model", 1_500_000, ok=True, input_tokens=7, output_tokens=3)
    root = Node("invoke_agent a", "agent", 3_000_000, ok=True, children=[llm, tool])
    text = render([root], color=False, title="Span tree:")
    assert text.splitlines() == [
        "Span tree:",
        "└─ invoke_agent a  [agent]  3.0 ms  OK",
        "   ├─ chat m  [chat_model]  1.5 ms  OK  tokens in=7 out=3",
        "   └─ execute_tool calc  [tool]  200 us  ERROR ValueError: bad",
    ]
    coloured = render([root], color=True)
    assert "\x1b[32;1m" in coloured and "\x1b[31;1m" in coloured
