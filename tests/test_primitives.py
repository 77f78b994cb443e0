"""The primitives users build apps from: prompts, models, chains, tools, agent, retriever."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import Recorder
from spanhook.agents import AgentExecutor, OutputParserError, calculator_tool, parse
from spanhook.chains import Chain, LLMChain, SequentialChain, SimpleSequentialChain
from spanhook.chat_models import FakeListChatModel, OfflineChatModel
from spanhook.llms import LLM, FakeListLLM, OfflineLLM
from spanhook.prompts import ChatPromptTemplate, PromptTemplate
from spanhook.retrievers import BaseRetriever, InMemoryRetriever
from spanhook.schema import AgentAction, AgentFinish, AIMessage, Document, SystemMessage
from spanhook.tools import Tool, tool


def test_prompt_template_variables_and_errors() -> None:
    p = PromptTemplate.from_template("Tell me a {adjective} joke about {content}.")
    assert p.input_variables == ["adjective", "content"]
    assert p.format(adjective="funny", content="chickens") == "Tell me a funny joke about chickens."
    with pytest.raises(KeyError, match="'content'"):
        p.format(adjective="funny")
    with pytest.raises(ValueError, match="positional field"):
        PromptTemplate.from_template("{} is unnamed")
    with pytest.raises(TypeError, match="template must be a str"):
        PromptTemplate(42)  # type: ignore[arg-type]


def test_chat_prompt_template_renders_messages() -> None:
    t = ChatPromptTemplate.from_messages([("system", "You are {role}."), ("human", "{q}")])
    assert t.input_variables == ["role", "q"]
    msgs = t.format_messages(role="terse", q="hi")
    assert isinstance(msgs[0], SystemMessage) and msgs[1].content == "hi"
    with pytest.raises(ValueError, match="unknown message role"):
        ChatPromptTemplate.from_messages([("robot", "x")])


class Shouty(LLM):
    """A custom model with the minimal LangChain signature (no run_manager)."""

    def _call(self, prompt: str, stop: list[str] | None = None) -> str:  # type: ignore[override]
        return prompt.upper()


def test_custom_llm_with_only_call_implemented(memory_exporter: InMemorySpanExporter) -> None:
    llm = Shouty()
    assert llm.invoke("abc") == "ABC"
    assert llm("abc") == "ABC"
    assert llm.predict("x") == "X"
    assert list(llm.stream("hey")) == ["HEY"]
    result = llm.generate(["a", "b"])
    assert [g[0].text for g in result.generations] == ["A", "B"]
    # generate: one run (span) per prompt
    assert [s.name for s in memory_exporter.get_finished_spans()].count(
        "text_completion Shouty"
    ) == 6
    with pytest.raises(TypeError, match="list of prompts"):
        llm.generate("a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prompt string"):
        llm.invoke(42)


def test_llm_retries_are_reported_with_on_retry() -> None:
    class Flaky(LLM):
        calls = 0

        def _call(
            self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kw: Any
        ) -> str:
            self.calls += 1
            if self.calls < 3:
                raise ConnectionError(f"attempt {self.calls}")
            return "ok"

    rec = Recorder()
    assert Flaky(max_retries=2).invoke("x", callbacks=[rec]) == "ok"
    retries = rec.of("on_retry")
    assert [r.args[0].attempt_number for r in retries] == [1, 2]
    assert isinstance(retries[0].args[0].outcome_error, ConnectionError)
    assert rec.names() == ["on_llm_start", "on_retry", "on_retry", "on_llm_end"]
    with pytest.raises(ConnectionError):
        Flaky(max_retries=0).invoke("x")


def test_chat_models_answer_with_messages_and_count_tokens(
    memory_exporter: InMemorySpanExporter,
) -> None:
    out = OfflineChatModel().invoke("What is 5 * 5?")
    assert isinstance(out, AIMessage) and out.content == "25"
    assert sorted(m.content for m in FakeListChatModel(responses=["a", "b"]).batch(["x", "y"])) == [
        "a",
        "b",
    ]
    span = next(
        s for s in memory_exporter.get_finished_spans() if s.name.startswith("chat spanhook")
    )
    assert span.attributes["gen_ai.operation.name"] == "chat"
    assert span.attributes["gen_ai.usage.output_tokens"] == 1
    assert span.attributes["gen_ai.usage.input_tokens"] == 6


def test_batch_returns_results_in_order() -> None:
    llm = FakeListLLM(responses=["a", "b", "c"])
    assert sorted(llm.batch(["1", "2", "3"])) == ["a", "b", "c"]
    answers = OfflineLLM().batch(["1 + 1 = ", "2 + 2 = ", "3 + 3 = "])
    assert answers == ["2", "4", "6"]


def test_chain_subclass_contract_and_request_methods() -> None:
    class Add(Chain):
        input_keys = ["a", "b"]
        output_keys = ["sum"]

        def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
            return {"sum": inputs["a"] + inputs["b"]}

    add = Add()
    assert add({"a": 1, "b": 2}) == {"a": 1, "b": 2, "sum": 3}
    assert add.invoke({"a": 1, "b": 2}, return_only_outputs=True) == {"sum": 3}
    assert add.run(a=1, b=2) == 3
    assert add.apply([{"a": 1, "b": 1}, {"a": 2, "b": 2}]) == [{"sum": 2}, {"sum": 4}]
    assert add.batch([{"a": 1, "b": 1}]) == [{"a": 1, "b": 1, "sum": 2}]
    with pytest.raises(ValueError, match=r"missing input key\(s\) \['b'\]"):
        add.run(a=1)
    with pytest.raises(ValueError, match="exactly one input key"):
        add.invoke(3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Add(colour="red")

    class Wrong(Chain):
        input_keys = ["x"]
        output_keys = ["y"]

        def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
            return {"z": 1}

    with pytest.raises(ValueError, match=r"did not return output key\(s\) \['y'\]"):
        Wrong().run(x=1)


def test_sequential_chains() -> None:
    first = LLMChain(
        llm=FakeListLLM(responses=["synopsis"]),
        prompt=PromptTemplate.from_template("Write about {title}"),
    )
    second = LLMChain(
        llm=FakeListLLM(responses=["review"]), prompt=PromptTemplate.from_template("Review {text}")
    )
    rec = Recorder()
    simple = SimpleSequentialChain(chains=[first, second])
    assert simple.run("Tragedy", callbacks=[rec]) == "review"
    chain_starts = [e.name for e in rec.of("on_chain_start")]
    assert chain_starts == ["SimpleSequentialChain", "LLMChain", "LLMChain"]
    texts = [e.args[0] for e in rec.of("on_text")]
    assert "synopsis" in texts and "review" in texts

    a = LLMChain(
        llm=FakeListLLM(responses=["S"]),
        prompt=PromptTemplate.from_template("{title}"),
        output_key="synopsis",
    )
    b = LLMChain(
        llm=FakeListLLM(responses=["R"]),
        prompt=PromptTemplate.from_template("{synopsis}"),
        output_key="review",
    )
    seq = SequentialChain(
        chains=[a, b], input_variables=["title"], output_variables=["synopsis", "review"]
    )
    assert seq.invoke({"title": "T"}, return_only_outputs=True) == {"synopsis": "S", "review": "R"}
    with pytest.raises(ValueError, match="needs \\['synopsis'\\]"):
        SequentialChain(chains=[b], input_variables=["title"])


def test_tool_decorator_and_errors() -> None:
    @tool
    def multiply(a: int, b: int) -> int:
        """Multiplies two numbers."""
        return a * b

    @tool("shout")
    def loud(text: str) -> str:
        """Upper-cases text."""
        return text.upper()

    assert multiply.name == "multiply" and multiply.description == "Multiplies two numbers."
    assert multiply.run({"a": 3, "b": 4}) == 12
    assert loud.name == "shout" and loud.run("hi") == "HI"
    with pytest.raises(ValueError, match="pass a dict"):
        multiply.run("3 4")
    with pytest.raises(ValueError, match="unknown argument"):
        multiply.run({"a": 1, "c": 2})
    with pytest.raises(ValueError, match="docstring"):
        tool(lambda x: x)
    with pytest.raises(ValueError, match="needs func= or coroutine="):
        Tool(name="x", func=None, description="d")


def test_tool_events_carry_dict_inputs() -> None:
    @tool
    def multiply(a: int, b: int) -> int:
        """Multiplies two numbers."""
        return a * b

    rec = Recorder()
    multiply.run({"a": 3, "b": 4}, callbacks=[rec], tool_call_id="call_9")
    start = rec.of("on_tool_start")[0]
    assert start.kwargs["inputs"] == {"a": 3, "b": 4} and start.kwargs["tool_call_id"] == "call_9"
    assert rec.of("on_tool_end")[0].args == (12,)


def test_retrievers() -> None:
    class Fixed(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            return [Document(page_content=f"about {query}")]

    rec = Recorder()
    docs = Fixed(tags=["kb"]).invoke("cats", callbacks=[rec])
    assert docs == [Document(page_content="about cats")]
    assert rec.names() == ["on_retriever_start", "on_retriever_end"]
    assert rec.events[0].args[1] == "cats" and rec.events[0].kwargs["tags"] == ["kb"]
    assert rec.events[1].args[0] == docs
    ranked = InMemoryRetriever(["cats purr", "dogs bark", "cats and dogs"], k=2).invoke("cats dogs")
    assert [d.page_content for d in ranked] == ["cats and dogs", "cats purr"]


def test_agent_loop_parsing_and_limits() -> None:
    assert parse("Thought: x\nAction: calculator\nAction Input: 1+1") == AgentAction(
        tool="calculator", tool_input="1+1", log="Thought: x\nAction: calculator\nAction Input: 1+1"
    )
    assert isinstance(parse("Final Answer: 2"), AgentFinish)
    with pytest.raises(OutputParserError, match="could not parse"):
        parse("no idea")

    looping = FakeListLLM(responses=["Action: calculator\nAction Input: 1 + 1"])
    agent = AgentExecutor(llm=looping, tools=[calculator_tool()], max_iterations=2)
    assert agent.run("q") == "Agent stopped due to iteration limit or time limit."

    wrong_tool = FakeListLLM(responses=["Action: search\nAction Input: x", "Final Answer: done"])
    rec = Recorder()
    assert (
        AgentExecutor(llm=wrong_tool, tools=[calculator_tool()]).run("q", callbacks=[rec]) == "done"
    )
    assert "on_tool_start" not in rec.names()
    garbled = FakeListLLM(responses=["hmm"])
    with pytest.raises(OutputParserError):
        AgentExecutor(llm=garbled, tools=[calculator_tool()]).run("q")
    with pytest.raises(ValueError, match="at least one tool"):
        AgentExecutor(llm=garbled, tools=[])


def test_agent_drives_chat_models_too() -> None:
    agent = AgentExecutor(llm=OfflineChatModel(), tools=[calculator_tool()])
    assert agent.invoke({"input": "What is 9 - 4?"}) == {"input": "What is 9 - 4?", "output": "5"}


def test_offline_model_is_deterministic() -> None:
    prompts = ["1 + 2 = ", "hello there", "What is 2 ** 10?"]
    first = [OfflineLLM().invoke(p) for p in prompts]
    assert first == [OfflineLLM().invoke(p) for p in prompts]
    assert first[0] == "3" and first[2] == "1024"


def test_offline_model_arithmetic_is_thread_safe() -> None:
    """The offline model's arithmetic is its own parser, safe in threads (CPython 3.11's
    ast.parse is not: concurrent calls can fail with a recursion-depth SystemError)."""
    import threading

    from spanhook.llms.offline import evaluate

    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(1500):
                assert evaluate(f"({k} + {i}) * 2 - (3 ** 2)") == (k + i) * 2 - 9
        except BaseException as e:
            errors.append(e)

    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


@pytest.mark.parametrize(
    "expression",
    [
        "1+2",
        "12 * (3 + 4)",
        "-2**2",
        "2**-1",
        "7/2",
        "7 % 3",
        "-(3+4)*2",
        "2 ** 3 ** 2",
        "1 + 2 * 3 - 4 / 2",
        "10 - 2 - 3",
    ],
)
def test_offline_arithmetic_follows_python_precedence(expression: str) -> None:
    from spanhook.llms.offline import evaluate

    expected = eval(expression)  # the reference: Python's own arithmetic
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    "bad", ["", "1 +", "(1", "1)", "abc", "2 ** 100", "1 2", '__import__("os")']
)
def test_offline_arithmetic_rejects_anything_else(bad: str) -> None:
    from spanhook.llms.offline import evaluate

    with pytest.raises(ValueError):
        evaluate(bad)


def test_constructor_and_request_options_are_checked() -> None:
    """Typed keyword options: the primitive options are validated, unknown ones rejected, by
    constructors and request methods alike (sync and async)."""
    import asyncio

    with pytest.raises(TypeError, match="tags for FakeListLLM"):
        FakeListLLM(["x"], tags="not-a-list")  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"FakeListLLM\(\) got an unexpected keyword argument 'colour'"
    ):
        FakeListLLM(["x"], colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"InMemoryRetriever\(\) got an unexpected keyword"):
        InMemoryRetriever(["doc"], colour="red")  # type: ignore[call-arg]
    llm = FakeListLLM(["x"], name="named", tags=["t"], metadata={"m": 1}, max_retries=1)
    assert (llm.get_name(), llm.tags, llm.metadata, llm.max_retries) == (
        "named",
        ["t"],
        {"m": 1},
        1,
    )

    chain = LLMChain(llm=FakeListLLM(["x"]), prompt=PromptTemplate.from_template("{q}"), name="c")
    assert chain.get_name() == "c"
    with pytest.raises(
        TypeError, match=r"c request got unexpected keyword argument\(s\) \['tag'\]"
    ):
        chain({"q": "a"}, tag=["x"])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['tag'\]"):
        asyncio.run(chain.abatch([{"q": "a"}], tag=["x"]))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['tag'\]"):
        InMemoryRetriever(["doc"]).invoke("doc", tag=["x"])  # type: ignore[call-arg]
    rec = Recorder()
    chain({"q": "a"}, callbacks=[rec], tags=["req"], metadata={"r": 1}, run_name="named-run")
    (start,) = rec.of("on_chain_start")
    assert (start.kwargs["name"], start.kwargs["tags"], start.kwargs["metadata"]) == (
        "named-run",
        ["req"],
        {"r": 1},
    )


def test_tool_invoke_merges_config_and_request_keywords_as_every_primitive(
    memory_exporter: InMemorySpanExporter,
) -> None:
    """``tool.invoke(x, config, callbacks=..., tags=...)``: both sets of callbacks and tags,
    metadata merged, the explicit run name first (it was a TypeError before)."""

    @tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    in_config, explicit = Recorder("config"), Recorder("explicit")
    config = {"callbacks": [in_config], "tags": ["a"], "metadata": {"k": 1}, "run_name": "cfg"}
    out = echo.invoke(
        "hi", config, callbacks=[explicit], tags=["b"], metadata={"j": 2}, run_name="mine"
    )
    assert out == "hi"
    assert in_config.names() == explicit.names() == ["on_tool_start", "on_tool_end"]
    (span,) = memory_exporter.get_finished_spans()
    attrs = span.attributes or {}
    assert in_config.of("on_tool_start")[0].kwargs["name"] == "mine"
    assert attrs["spanhook.tags"] == ("a", "b")
    assert (attrs["spanhook.metadata.k"], attrs["spanhook.metadata.j"]) == (1, 2)
