"""Tools."""

from spanhook.tools.base import Tool, ToolException, tool

__all__ = ["Tool", "ToolException", "tool"]
