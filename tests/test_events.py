"""The vocabulary table against the handler contract and the runtime that uses it."""

from __future__ import annotations

import inspect

import pytest

from spanhook.callbacks.base import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.events import EVENTS, IGNORE_FLAG, KIND_EVENTS, KINDS, LIFECYCLE_EVENTS, START_KINDS
from spanhook.testing import AsyncRecorder, Recorder

_CONTRACT = {n for n, v in vars(BaseCallbackHandler).items() if n.startswith("on_") and callable(v)}


def test_the_table_names_exactly_the_events_of_the_handler_contract() -> None:
    assert set(EVENTS) == _CONTRACT
    assert {n for n in vars(AsyncCallbackHandler) if n.startswith("on_")} == _CONTRACT


@pytest.mark.parametrize("cls", [BaseCallbackHandler, AsyncCallbackHandler])
@pytest.mark.parametrize("event", sorted(EVENTS))
def test_each_handler_method_takes_the_declared_positional_parameters(
    cls: type, event: str
) -> None:
    params = list(inspect.signature(getattr(cls, event)).parameters.values())[1:]
    positional = tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)
    assert positional == EVENTS[event].params
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_each_ignore_flag_exists_on_the_base_handler_and_defaults_to_false(event: str) -> None:
    flag = IGNORE_FLAG[event]
    if flag is not None:
        assert getattr(BaseCallbackHandler(), flag) is False


def test_every_kind_starts_ends_and_fails_with_events_of_its_own() -> None:
    assert set(KIND_EVENTS) == set(KINDS)
    for kind, (start, end, error) in KIND_EVENTS.items():
        assert [EVENTS[e].role for e in (start, end, error)] == ["start", "end", "error"]
        assert all(kind in EVENTS[e].kinds for e in (start, end, error))
    # chat models end like LLMs; agents run as chains
    assert KIND_EVENTS["chat_model"][1:] == KIND_EVENTS["llm"][1:]
    assert KIND_EVENTS["agent"] == KIND_EVENTS["chain"]
    assert START_KINDS["on_chat_model_start"] == "chat_model"
    assert len(LIFECYCLE_EVENTS) == 13


def test_only_events_inside_a_run_have_span_recipes() -> None:
    for spec in EVENTS.values():
        assert (spec.span is not None) == (
            spec.role == "in_run" and spec.name != "on_llm_new_token"
        ), spec.name


def test_the_recorders_implement_every_event() -> None:
    rec, arec = Recorder(), AsyncRecorder()
    for event in EVENTS:
        assert not inspect.iscoroutinefunction(getattr(rec, event))
        assert inspect.iscoroutinefunction(getattr(arec, event))
