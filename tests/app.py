"""The nested test application: outer chain -> inner chain -> LLM + tool."""

from __future__ import annotations

from typing import Any

from spanhook.chains import Chain
from spanhook.llms import FakeListLLM
from spanhook.tools import Tool


class Inner(Chain):
    input_keys = ["q"]
    output_keys = ["out"]
    llm: Any = None
    tool: Any = None

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        answer = self.llm.invoke(inputs["q"])
        return {"out": self.tool.run(answer)}


class Outer(Chain):
    input_keys = ["q"]
    output_keys = ["out"]
    inner: Any = None

    def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return self.inner(inputs, return_only_outputs=True)  # type: ignore[no-any-return]


def build(
    outer_kw: dict[str, Any] | None = None,
    inner_kw: dict[str, Any] | None = None,
    llm_kw: dict[str, Any] | None = None,
    tool_kw: dict[str, Any] | None = None,
) -> tuple[Outer, Inner, FakeListLLM, Tool]:
    llm = FakeListLLM(responses=["llm-answer"], **(llm_kw or {}))
    tool = Tool(
        name="echo_tool", func=lambda s: f"tool({s})", description="echoes", **(tool_kw or {})
    )
    inner = Inner(llm=llm, tool=tool, name="inner_chain", **(inner_kw or {}))
    outer = Outer(inner=inner, name="outer_chain", **(outer_kw or {}))
    return outer, inner, llm, tool
