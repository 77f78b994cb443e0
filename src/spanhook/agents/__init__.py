"""Agents."""

from spanhook.agents.executor import AgentExecutor, OutputParserError, calculator_tool, parse

__all__ = ["AgentExecutor", "OutputParserError", "calculator_tool", "parse"]
