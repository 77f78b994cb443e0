"""Prompt templates: ``PromptTemplate`` (f-string style) and ``ChatPromptTemplate``."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spanhook.schema.messages import BaseMessage, HumanMessage, get_buffer_string, message_from_role


class MissingVariablesError(KeyError):
    """Raised when a template is formatted without some of its variables."""

    def __init__(self, template_name: str, missing: Sequence[str], given: Sequence[str]):
        self.missing = list(missing)
        msg = (
            f"{template_name} is missing variable(s) {', '.join(repr(m) for m in missing)}"
            f" (given: {', '.join(repr(g) for g in given) or 'none'})"
        )
        super().__init__(msg)
        self.message = msg

    def __str__(self) -> str:
        return self.message


def _variables(template: str) -> list[str]:
    names: list[str] = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        root = field.split(".")[0].split("[")[0]
        if not root or root.isdigit():
            raise ValueError(
                f"template {template!r} uses a positional field {{{field}}}: name every variable"
            )
        if root not in names:
            names.append(root)
    return names


@dataclass
class PromptValue:
    """A formatted prompt: readable as a string (LLMs) or as messages (chat models)."""

    text: str | None = None
    messages: list[BaseMessage] | None = None

    def to_string(self) -> str:
        if self.text is not None:
            return self.text
        return get_buffer_string(self.messages or [])

    def to_messages(self) -> list[BaseMessage]:
        if self.messages is not None:
            return list(self.messages)
        return [HumanMessage(content=self.text or "")]

    def __str__(self) -> str:
        return self.to_string()


class PromptTemplate:
    """A prompt with ``{variables}``, e.g. ``PromptTemplate.from_template("1 + {number} = ")``."""

    def __init__(
        self,
        template: str,
        input_variables: Sequence[str] | None = None,
        partial_variables: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(template, str):
            raise TypeError(f"template must be a str, got {type(template).__name__}")
        self.template = template
        found = _variables(template)
        self.partial_variables = dict(partial_variables or {})
        if input_variables is None:
            input_variables = [v for v in found if v not in self.partial_variables]
        else:
            unknown = [v for v in input_variables if v not in found]
            if unknown:
                raise ValueError(
                    f"input_variables {unknown} do not appear in template {template!r}"
                )
            undeclared = [
                v for v in found if v not in input_variables and v not in self.partial_variables
            ]
            if undeclared:
                raise ValueError(
                    f"template {template!r} uses {undeclared} which are not in input_variables"
                )
        self.input_variables = list(input_variables)

    @classmethod
    def from_template(cls, template: str, **kwargs: Any) -> PromptTemplate:
        return cls(template, **kwargs)

    def partial(self, **values: Any) -> PromptTemplate:
        return PromptTemplate(self.template, partial_variables={**self.partial_variables, **values})

    def format(self, **kwargs: Any) -> str:
        values = {**self.partial_variables, **kwargs}
        missing = [v for v in self.input_variables if v not in values]
        if missing:
            raise MissingVariablesError("PromptTemplate", missing, sorted(kwargs))
        return self.template.format(**values)

    def format_prompt(self, **kwargs: Any) -> PromptValue:
        return PromptValue(text=self.format(**kwargs))

    def invoke(self, input: Mapping[str, Any]) -> PromptValue:
        return self.format_prompt(**input)

    def __repr__(self) -> str:
        return (
            f"PromptTemplate(template={self.template!r}, input_variables={self.input_variables!r})"
        )


class ChatPromptTemplate:
    """Messages with ``{variables}``: ``ChatPromptTemplate.from_messages([("system", "..."),
    ("human", "{question}")])``."""

    def __init__(self, messages: Sequence[tuple[str, str] | BaseMessage]) -> None:
        self.messages: list[tuple[str, PromptTemplate] | BaseMessage] = []
        names: list[str] = []
        for i, m in enumerate(messages):
            if isinstance(m, BaseMessage):
                self.messages.append(m)
            elif isinstance(m, tuple) and len(m) == 2 and all(isinstance(p, str) for p in m):
                role, tmpl = m
                message_from_role(role, "")  # validates the role
                pt = PromptTemplate(tmpl)
                self.messages.append((role, pt))
                names += [v for v in pt.input_variables if v not in names]
            else:
                raise TypeError(
                    f"messages[{i}] must be a (role, template) pair or a message, got {m!r}"
                )
        self.input_variables = names

    @classmethod
    def from_messages(cls, messages: Sequence[tuple[str, str] | BaseMessage]) -> ChatPromptTemplate:
        return cls(messages)

    @classmethod
    def from_template(cls, template: str) -> ChatPromptTemplate:
        return cls([("human", template)])

    def format_messages(self, **kwargs: Any) -> list[BaseMessage]:
        missing = [v for v in self.input_variables if v not in kwargs]
        if missing:
            raise MissingVariablesError("ChatPromptTemplate", missing, sorted(kwargs))
        out: list[BaseMessage] = []
        for m in self.messages:
            if isinstance(m, BaseMessage):
                out.append(m)
            else:
                role, pt = m
                out.append(message_from_role(role, pt.format(**kwargs)))
        return out

    def format_prompt(self, **kwargs: Any) -> PromptValue:
        return PromptValue(messages=self.format_messages(**kwargs))

    def format(self, **kwargs: Any) -> str:
        return self.format_prompt(**kwargs).to_string()

    def invoke(self, input: Mapping[str, Any]) -> PromptValue:
        return self.format_prompt(**input)
