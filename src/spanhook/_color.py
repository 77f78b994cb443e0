"""ANSI colour like langchain-core's, only on a terminal and never when ``NO_COLOR`` is set."""

from __future__ import annotations

import os
import re
import sys
from typing import TextIO

COLORS = {
    "blue": "36;1",
    "yellow": "33;1",
    "pink": "38;5;200",
    "green": "32;1",
    "red": "31;1",
}


def color_enabled(stream: TextIO | None = None) -> bool:
    """Colour only on a TTY, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def colored(text: str, color: str | None, enabled: bool | None = None) -> str:
    if color is None or not (color_enabled() if enabled is None else enabled):
        return text
    code = COLORS.get(color)
    if code is None:
        raise ValueError(f"unknown colour {color!r}: expected one of {sorted(COLORS)}")
    return f"\x1b[{code}m\x1b[1;3m{text}\x1b[0m"


def bold(text: str, enabled: bool | None = None) -> str:
    if not (color_enabled() if enabled is None else enabled):
        return text
    return f"\x1b[1m{text}\x1b[0m"


#: Terminal colour codes (stripped where colour is off, and from span content).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def print_text(
    text: str, color: str | None = None, end: str = "", file: TextIO | None = None
) -> None:
    """Print ``text`` in ``color`` (when colour is on for that stream) with no newline unless
    ``end`` says so. Text coloured upstream loses its colour on a stream without colour."""
    stream = sys.stdout if file is None else file
    enabled = color_enabled(stream)
    if not enabled and "\x1b[" in text:
        text = ANSI_ESCAPE.sub("", text)
    print(colored(text, color, enabled), end=end, file=stream, flush=True)
