"""Prompt templates."""

from spanhook.prompts.base import (
    ChatPromptTemplate,
    MissingVariablesError,
    PromptTemplate,
    PromptValue,
)

__all__ = ["ChatPromptTemplate", "MissingVariablesError", "PromptTemplate", "PromptValue"]
