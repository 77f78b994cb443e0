"""The GenAI request and response attributes of langchain-core model runs, read from where
langchain-core models put them: ``usage_metadata`` and ``response_metadata`` on the message
(model, provider id, ``finish_reason`` or Anthropic's ``stop_reason``), or an LLM's
``llm_output`` (``token_usage``, ``model_name``, ``id``) and ``generation_info``."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import Generation, LLMResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhook.tracing import attributes as attr

pytest_plugins = ["lc_fixtures"]
pytestmark = pytest.mark.usefixtures("stop_request_exporters")


def _attrs(exporter: InMemorySpanExporter) -> dict[str, Any]:
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})


def test_chat_model_response_attributes_from_the_message(traced: InMemorySpanExporter) -> None:
    message = AIMessage(
        "done",
        id="lc_run--made-up",
        response_metadata={"id": "msg_01", "model": "claude-x-1", "stop_reason": "end_turn"},
        usage_metadata={"input_tokens": 11, "output_tokens": 3, "total_tokens": 14},
    )
    GenericFakeChatModel(messages=iter([message])).invoke("hello")
    a = _attrs(traced)
    assert a[attr.GEN_AI_OPERATION_NAME] == "chat"
    assert (a[attr.GEN_AI_USAGE_INPUT_TOKENS], a[attr.GEN_AI_USAGE_OUTPUT_TOKENS]) == (11, 3)
    assert (a[attr.GEN_AI_RESPONSE_MODEL], a[attr.GEN_AI_RESPONSE_ID]) == ("claude-x-1", "msg_01")
    assert a[attr.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert a[attr.GEN_AI_REQUEST_STREAM] is False


class UsageLLM(BaseLLM):
    """An LLM reporting its usage, model and id in ``llm_output``, as provider LLMs do."""

    @property
    def _llm_type(self) -> str:
        return "usage-llm"

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        return LLMResult(
            generations=[[Generation(text="4", generation_info={"finish_reason": "length"})]],
            llm_output={
                "token_usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                "model_name": "completion-x",
                "id": "cmpl-7",
            },
        )


def test_llm_response_attributes_from_llm_output(traced: InMemorySpanExporter) -> None:
    UsageLLM().invoke("2 + 2 =")
    a = _attrs(traced)
    assert a[attr.GEN_AI_OPERATION_NAME] == "text_completion"
    assert (a[attr.GEN_AI_USAGE_INPUT_TOKENS], a[attr.GEN_AI_USAGE_OUTPUT_TOKENS]) == (5, 1)
    assert (a[attr.GEN_AI_RESPONSE_MODEL], a[attr.GEN_AI_RESPONSE_ID]) == ("completion-x", "cmpl-7")
    assert a[attr.GEN_AI_RESPONSE_FINISH_REASONS] == ("length",)


def test_no_response_id_is_made_up(traced: InMemorySpanExporter) -> None:
    """langchain-core gives every message an id of its own; that is not the provider's."""
    GenericFakeChatModel(messages=iter([AIMessage("plain")])).invoke("hello")
    assert attr.GEN_AI_RESPONSE_ID not in _attrs(traced)


# -- one LLM span per model call, next to a provider instrumentation ---------------------


def test_a_provider_instrumentation_adds_no_second_llm_span_unless_asked() -> None:
    """A langchain-core chat model calling the openai SDK, with OpenLLMetry's instrumentation
    of the SDK in the same app (its own process): each model call, sync, streamed and async,
    is one LLM span, spanhook's; the app's direct SDK call is still traced; with
    ``instrument(suppress_provider_spans=False)`` the provider's span is kept, nested under
    the model run's."""
    from pathlib import Path

    from instrumented_openai_app import run_app
    from openai_server import OpenAIServer

    app = Path(__file__).with_name("instrumented_lc_openai_app.py")
    with OpenAIServer() as server:
        phases = run_app(app, server.url)
        assert len(server.requests) == 5
    names = [s["name"] for s in phases["suppressed"]]
    assert names.count("chat test-model") == 3
    assert len(names) == 4 and names[-1] != "chat test-model"  # the direct call's own span
    provider_span, run_span = phases["kept"]
    assert run_span["name"] == "chat test-model" and provider_span["name"] != run_span["name"]
    assert provider_span["parent"] == run_span["id"]


# -- the model's name, from wherever a langchain-core model gives it -------------------


@pytest.mark.parametrize(
    ("serialized", "params", "metadata", "expected"),
    [
        (None, {"model_name": "second", "model": "first"}, None, "first"),
        (None, {"model_id": "bedrock-x", "_type": "bedrock"}, None, "bedrock-x"),
        (None, {"_type": "fake-list"}, {"ls_model_name": "from-ls"}, "from-ls"),
        ({"kwargs": {"deployment_name": "azure-x"}}, {"_type": "azure"}, None, "azure-x"),
        ({"name": "Named"}, {"_type": "custom-type"}, None, "custom-type"),
        ({"id": ["langchain", "chat_models", "MyChat"]}, None, None, "MyChat"),
        (None, None, None, "<unknown>"),
    ],
    ids=["params", "model-id", "ls-metadata", "serialized-kwargs", "type", "class", "nothing"],
)
def test_model_name_sources_in_order(
    serialized: Any, params: Any, metadata: Any, expected: str
) -> None:
    from spanhook.langchain import naming

    assert naming.model_name(serialized, params, metadata) == expected
