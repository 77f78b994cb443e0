"""The bridge: langchain-core's method names, arguments and keyword arguments; ignore_*
flags, raise_error, the chat-model fallback, isolation of failing handlers, handlers written
for langchain-core running unmodified."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from app import build
from helpers import Recorder
from spanhook.agents import AgentExecutor, calculator_tool
from spanhook.callbacks import BaseCallbackHandler, ConsoleCallbackHandler, dispatch_custom_event
from spanhook.chains import Chain, LLMChain
from spanhook.chat_models import FakeListChatModel
from spanhook.llms import FakeListLLM, OfflineLLM
from spanhook.prompts import PromptTemplate
from spanhook.schema import AgentAction, AgentFinish, HumanMessage, LLMResult


def test_start_and_end_kwargs_match_langchain_core() -> None:
    rec = Recorder()
    outer, *_ = build()
    outer.invoke({"q": "hi"}, callbacks=[rec], tags=["t"], metadata={"m": 1})
    (chain_start,) = [e for e in rec.of("on_chain_start") if e.name == "outer_chain"]
    serialized, inputs = chain_start.args
    assert serialized["id"][-1] == "Outer" and serialized["name"] == "outer_chain"
    assert inputs == {"q": "hi"}
    assert set(chain_start.kwargs) == {"run_id", "parent_run_id", "tags", "metadata", "name"}
    assert isinstance(chain_start.run_id, UUID) and chain_start.parent_run_id is None

    llm_start = rec.of("on_llm_start")[0]
    assert llm_start.args[1] == ["hi"]
    assert set(llm_start.kwargs) == {
        "run_id",
        "parent_run_id",
        "tags",
        "metadata",
        "invocation_params",
        "options",
        "name",
        "batch_size",
    }
    assert llm_start.kwargs["invocation_params"]["_type"] == "FakeListLLM"
    llm_end = rec.of("on_llm_end")[0]
    assert isinstance(llm_end.args[0], LLMResult)
    assert llm_end.args[0].generations[0][0].text == "llm-answer"
    assert set(llm_end.kwargs) == {"run_id", "parent_run_id", "tags"}

    tool_start = rec.of("on_tool_start")[0]
    assert tool_start.args == ({"name": "echo_tool", "description": "echoes"}, "llm-answer")
    # langchain-core passes ``inputs`` only for a dict input: ``None`` for a string input
    assert "inputs" in tool_start.kwargs and tool_start.kwargs["inputs"] is None
    assert {"color", "tool_call_id", "name"} <= set(tool_start.kwargs)
    tool_end = rec.of("on_tool_end")[0]
    assert tool_end.args == ("tool(llm-answer)",)
    chain_end = rec.of("on_chain_end")[-1]
    assert chain_end.args == ({"out": "tool(llm-answer)"},)
    assert set(chain_end.kwargs) == {"run_id", "parent_run_id", "tags"}


def test_llm_chain_emits_prompt_after_formatting_as_text() -> None:
    rec = Recorder()
    chain = LLMChain(
        llm=FakeListLLM(responses=["3"]), prompt=PromptTemplate.from_template("1 + {number} = ")
    )
    chain.run(number=2, callbacks=[rec])
    text = rec.of("on_text")[0]
    assert text.args == ("Prompt after formatting:\n1 + 2 = ",)
    assert text.kwargs["end"] == "\n"
    assert text.run_id == rec.of("on_chain_start")[0].run_id


def test_agent_actions_and_finish_reach_handlers_as_objects() -> None:
    rec = Recorder()
    agent = AgentExecutor(llm=OfflineLLM(), tools=[calculator_tool()])
    assert agent.run("What is 6 * 7?", callbacks=[rec]) == "42"
    action = rec.of("on_agent_action")[0].args[0]
    assert isinstance(action, AgentAction)
    assert (action.tool, action.tool_input) == ("calculator", "6 * 7")
    finish = rec.of("on_agent_finish")[0].args[0]
    assert isinstance(finish, AgentFinish) and finish.return_values == {"output": "42"}
    tool_start = rec.of("on_tool_start")[0]
    assert tool_start.kwargs["tool_call_id"] == "call_1"
    assert rec.of("on_tool_end")[0].kwargs["observation_prefix"] == "Observation: "


class Ignoring(Recorder):
    def __init__(self, flag: str) -> None:
        super().__init__(flag)
        self.flag = flag

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("ignore_"):
            return name == object.__getattribute__(self, "flag")
        return super().__getattribute__(name)


@pytest.mark.parametrize(
    ("flag", "silenced"),
    [
        ("ignore_chain", {"on_chain_start", "on_chain_end"}),
        ("ignore_llm", {"on_llm_start", "on_llm_end"}),
        ("ignore_agent", {"on_tool_start", "on_tool_end", "on_agent_action", "on_agent_finish"}),
    ],
)
def test_ignore_flags_silence_exactly_their_events(flag: str, silenced: set[str]) -> None:
    everything, ignoring = Recorder(), Ignoring(flag)
    agent = AgentExecutor(llm=OfflineLLM(), tools=[calculator_tool()])
    agent.run("What is 1 + 1?", callbacks=[everything, ignoring])
    assert set(ignoring.names()) == set(everything.names()) - silenced
    assert silenced <= set(everything.names())


def test_ignore_chat_model_and_custom_event_and_retriever() -> None:
    chat_ignoring, custom_ignoring, plain = (
        Ignoring("ignore_chat_model"),
        Ignoring("ignore_custom_event"),
        Recorder(),
    )
    model = FakeListChatModel(responses=["hey"])
    model.invoke("hi", callbacks=[chat_ignoring, plain])
    assert "on_chat_model_start" not in chat_ignoring.names()
    assert "on_chat_model_start" in plain.names()

    class Emitting(Chain):
        input_keys = ["x"]
        output_keys = ["y"]

        def _call(self, inputs: dict[str, Any]) -> dict[str, Any]:
            dispatch_custom_event("progress", {"pct": 50})
            return {"y": 1}

    Emitting().invoke({"x": 1}, callbacks=[custom_ignoring, plain])
    assert "on_custom_event" not in custom_ignoring.names()
    custom = plain.of("on_custom_event")[0]
    assert custom.args == ("progress", {"pct": 50})
    assert custom.run_id == plain.of("on_chain_start")[0].run_id
    assert "parent_run_id" not in custom.kwargs


def test_custom_event_outside_a_run_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="outside any run"):
        dispatch_custom_event("x", 1)


class NoChat(BaseCallbackHandler):
    def __init__(self) -> None:
        self.prompts: list[list[str]] = []

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        self.prompts.append(prompts)


def test_chat_model_runs_fall_back_to_on_llm_start(caplog: pytest.LogCaptureFixture) -> None:
    nochat, rec = NoChat(), Recorder()
    FakeListChatModel(responses=["hey"]).invoke(
        [HumanMessage(content="say hi")], callbacks=[nochat, rec]
    )
    assert nochat.prompts == [["Human: say hi"]]
    start = rec.of("on_chat_model_start")[0]
    assert start.args[1][0][0].content == "say hi"
    assert rec.names() == ["on_chat_model_start", "on_llm_end"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class Bad(Recorder):
    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().on_chain_start(*args, **kwargs)
        raise RuntimeError("handler bug")


def test_a_raising_handler_is_logged_and_isolated(
    caplog: pytest.LogCaptureFixture, memory_exporter: InMemorySpanExporter
) -> None:
    bad, good = Bad("bad"), Recorder("good")
    outer, *_ = build()
    with caplog.at_level(logging.WARNING, logger="spanhook.callbacks"):
        assert outer.invoke({"q": "hi"}, callbacks=[bad, good])["out"] == "tool(llm-answer)"
    assert len(good.events) == 8 and len(bad.events) == 8
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("Error in Bad.on_chain_start callback: RuntimeError('handler bug')") == 2
    spans = memory_exporter.get_finished_spans()
    assert len(spans) == 4 and all(s.status.status_code != StatusCode.ERROR for s in spans)


def test_raise_error_handler_stops_the_run_and_the_span_records_it(
    memory_exporter: InMemorySpanExporter,
) -> None:
    bad, good = Bad("bad"), Recorder("good")
    bad.raise_error = True
    outer, *_ = build()
    with pytest.raises(RuntimeError, match="handler bug"):
        outer.invoke({"q": "hi"}, callbacks=[bad, good])
    # the outer run failed at its start: no nested run happened
    assert [s.name for s in memory_exporter.get_finished_spans()] == ["outer_chain"]
    span = memory_exporter.get_finished_spans()[0]
    assert span.status.status_code == StatusCode.ERROR
    assert span.events[0].name == "exception"
    assert "on_chain_error" in good.names() and "on_chain_end" not in good.names()


def test_raise_error_in_end_propagates_without_a_second_error_event(
    memory_exporter: InMemorySpanExporter,
) -> None:
    class Guard(Recorder):
        raise_error = True

        def on_chain_end(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
            super().on_chain_end(*args, **kwargs)
            raise ValueError("rejected output")

    guard = Guard()
    chain = LLMChain(llm=FakeListLLM(responses=["x"]), prompt=PromptTemplate.from_template("{q}"))
    with pytest.raises(ValueError, match="rejected output"):
        chain.run(q="hi", callbacks=[guard])
    assert guard.names()[-1] == "on_chain_end" and "on_chain_error" not in guard.names()
    chain_span = next(s for s in memory_exporter.get_finished_spans() if s.name == "LLMChain")
    assert chain_span.status.status_code == StatusCode.ERROR


def test_keyboard_interrupt_from_a_handler_propagates_and_ends_the_span(
    memory_exporter: InMemorySpanExporter,
) -> None:
    class Interrupting(BaseCallbackHandler):
        def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

    rec = Recorder()
    outer, *_ = build()
    with pytest.raises(KeyboardInterrupt):
        outer.invoke({"q": "hi"}, callbacks=[Interrupting(), rec])
    spans = {s.name: s for s in memory_exporter.get_finished_spans()}
    assert set(spans) == {"outer_chain", "inner_chain", "text_completion fake-list"}
    assert all(s.status.status_code == StatusCode.ERROR for s in spans.values())
    assert [e.event for e in rec.events if e.event.endswith("_error")] == [
        "on_llm_error",
        "on_chain_error",
        "on_chain_error",
    ]


def test_langchain_core_handlers_work_unmodified(capsys: pytest.CaptureFixture[str]) -> None:
    import langchain_core.callbacks as lc  # a test dependency: never skipped

    class LCRecorder(lc.BaseCallbackHandler):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.seen: list[tuple[str, Any]] = []

        def on_chain_start(
            self,
            serialized: Any,
            inputs: Any,
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            **kwargs: Any,
        ) -> None:
            self.seen.append(("chain_start", kwargs["name"]))

        def on_llm_start(self, serialized: Any, prompts: list[str], **kwargs: Any) -> None:
            self.seen.append(("llm_start", prompts))

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            self.seen.append(("llm_end", response.generations[0][0].text))

        @property
        def ignore_agent(self) -> bool:
            return True

        def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
            self.seen.append(("tool_start", None))

    handler = LCRecorder()
    outer, *_ = build()
    outer.invoke({"q": "hi"}, callbacks=[handler])
    assert handler.seen == [
        ("chain_start", "outer_chain"),
        ("chain_start", "inner_chain"),
        ("llm_start", ["hi"]),
        ("llm_end", "llm-answer"),
    ]
    # chat model fallback for a langchain-core handler without on_chat_model_start
    handler.seen.clear()
    FakeListChatModel(responses=["hey"]).invoke("hello", callbacks=[handler])
    assert handler.seen == [("llm_start", ["Human: hello"]), ("llm_end", "hey")]
    # langchain-core's own StdOutCallbackHandler prints the same transcript here
    chain = LLMChain(
        llm=FakeListLLM(responses=["3"]), prompt=PromptTemplate.from_template("1 + {number} = ")
    )
    capsys.readouterr()
    chain.run(number=2, callbacks=[lc.StdOutCallbackHandler()])
    out = capsys.readouterr().out
    assert (
        "> Entering new LLMChain chain..." in out
        and "1 + 2 = " in out
        and "> Finished chain." in out
    )


def test_duck_typed_handlers_are_accepted() -> None:
    class Duck:
        def __init__(self) -> None:
            self.ends: list[Any] = []

        def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
            self.ends.append(outputs)

    duck = Duck()
    outer, *_ = build()
    outer.invoke({"q": "hi"}, callbacks=[duck])
    assert duck.ends == [{"out": "tool(llm-answer)"}] * 2


@pytest.mark.parametrize("bad", [object(), "handler", 42, None])
def test_a_callbacks_entry_that_is_not_a_handler_is_a_type_error_naming_it(bad: Any) -> None:
    outer, *_ = build()
    with pytest.raises(TypeError, match=r"callbacks\[1\].*expected a callback handler"):
        outer.invoke({"q": "hi"}, callbacks=[Recorder(), bad])
    with pytest.raises(TypeError, match=r"callbacks\[0\] for FakeListLLM"):
        FakeListLLM(responses=["x"], callbacks=[bad])


def test_callbacks_must_be_a_list() -> None:
    outer, *_ = build()
    with pytest.raises(TypeError, match="must be a list"):
        outer.invoke({"q": "hi"}, callbacks=Recorder())  # type: ignore[arg-type]


def test_console_handler_prints_breadcrumbs_tool_start_and_the_run_tree(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outer, *_ = build()
    outer.invoke({"q": "hi"}, callbacks=[ConsoleCallbackHandler()])
    out = capsys.readouterr().out
    assert "[chain/start] [chain:outer_chain] Entering Chain run with input:" in out
    assert (
        "[llm/start] [chain:outer_chain > chain:inner_chain > llm:FakeListLLM] Entering LLM run"
        in out
    )
    assert (
        "[tool/start] [chain:outer_chain > chain:inner_chain > tool:echo_tool] Entering Tool run with input:"
        in out
    )
    assert "[chain/end] [chain:outer_chain]" in out
    tree = out[out.index("Run tree:") :]
    assert "outer_chain" in tree and "echo_tool" in tree and "\x1b[" not in out
