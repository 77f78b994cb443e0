"""The documentation's example, with spanhook imports and FakeListLLM in place of a hosted
model: constructor callbacks, verbose and request callbacks print the same transcript."""

from __future__ import annotations

import io
import sys

import pytest

from spanhook.callbacks import StdOutCallbackHandler
from spanhook.chains import LLMChain
from spanhook.llms import FakeListLLM
from spanhook.prompts import PromptTemplate

PLAIN = "\n\n> Entering new LLMChain chain...\nPrompt after formatting:\n1 + 2 = \n\n> Finished chain.\n"
COLOURED = (
    "\n\n\x1b[1m> Entering new LLMChain chain...\x1b[0m\n"
    "Prompt after formatting:\n\x1b[32;1m\x1b[1;3m1 + 2 = \x1b[0m\n"
    "\n\x1b[1m> Finished chain.\x1b[0m\n"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def three_ways() -> list[str]:
    """Run the example's three variants, capturing each one's stdout."""
    outputs = []
    handler = StdOutCallbackHandler()
    llm = FakeListLLM(responses=["\n\n3"])
    prompt = PromptTemplate.from_template("1 + {number} = ")
    variants = [
        lambda: LLMChain(llm=llm, prompt=prompt, callbacks=[handler]).run(number=2),
        lambda: LLMChain(llm=llm, prompt=prompt, verbose=True).run(number=2),
        lambda: LLMChain(llm=llm, prompt=prompt).run(number=2, callbacks=[handler]),
    ]
    for variant in variants:
        out = sys.stdout
        try:
            sys.stdout = buf = Terminal() if isinstance(out, Terminal) else io.StringIO()
            assert variant() == "\n\n3"
        finally:
            sys.stdout = out
        outputs.append(buf.getvalue())
    return outputs


def test_the_three_ways_print_the_same_transcript_without_colour_off_a_terminal() -> None:
    ctor, verbose, request = three_ways()
    assert ctor == PLAIN
    assert request == PLAIN
    assert verbose.startswith(PLAIN)
    tree = verbose[len(PLAIN) :]
    assert "Span tree (trace " in tree
    assert "LLMChain  [chain]" in tree and "text_completion fake-list  [llm]" in tree
    assert tree.count("OK") == 2 and "\x1b[" not in tree


def test_colour_on_a_terminal_like_langchain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", Terminal())
    ctor, verbose, request = three_ways()
    assert ctor == COLOURED
    assert request == COLOURED
    assert verbose.startswith(COLOURED)


def test_no_color_turns_colour_off_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(sys, "stdout", Terminal())
    ctor, _, request = three_ways()
    assert ctor == PLAIN and request == PLAIN


def test_missing_prompt_variables_are_named() -> None:
    chain = LLMChain(
        llm=FakeListLLM(responses=["x"]), prompt=PromptTemplate.from_template("{a} and {b}")
    )
    with pytest.raises(ValueError, match=r"missing input key\(s\) \['b'\]"):
        chain.run(a=1)
    with pytest.raises(KeyError, match="missing variable"):
        PromptTemplate.from_template("{a} and {b}").format(a=1)


def test_the_transcript_can_be_kept_as_a_value_instead_of_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from spanhook.callbacks import StreamingStdOutCallbackHandler

    monkeypatch.setattr(sys, "stdout", Terminal())  # even with a terminal on stdout
    transcript, tokens = io.StringIO(), io.StringIO()
    llm = FakeListLLM(responses=["\n\n3"], streaming=True)
    chain = LLMChain(llm=llm, prompt=PromptTemplate.from_template("1 + {number} = "))
    chain.run(
        number=2,
        callbacks=[
            StdOutCallbackHandler(file=transcript),
            StreamingStdOutCallbackHandler(file=tokens),
        ],
    )
    assert transcript.getvalue() == PLAIN  # the file is no terminal: no colour
    assert tokens.getvalue() == "\n\n3"
    assert sys.stdout.getvalue() == ""  # nothing went to stdout
    coloured = Terminal()
    chain.run(number=2, callbacks=[StdOutCallbackHandler(file=coloured)])
    assert coloured.getvalue() == COLOURED
