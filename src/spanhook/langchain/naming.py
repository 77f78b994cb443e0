"""Span names, kinds and GenAI attributes of langchain-core runs, the same as spanhook's
native runs: ``chat {model}``, ``text_completion {model}``, ``execute_tool {tool}``,
``invoke_agent {graph}``, ``retrieval {name}``, and the run's name for other chains."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spanhook.schema import genai
from spanhook.tracing import attributes as attr

_MODEL_KEYS = ("model", "model_name", "model_id", "deployment_name", "repo_id")
_MODEL_KEY_SET = frozenset(_MODEL_KEYS)
#: Positional tags langchain-core and LangGraph add to every step ("seq:step:2").
STEP_TAGS = ("seq:step:", "graph:step:", "langsmith:")
#: Metadata langchain-core and LangGraph add for LangSmith's bookkeeping: the model's
#: parameters (already gen_ai.* attributes), package versions, the integration's name.
TRACING_KEYS = frozenset(
    (
        "ls_provider",
        "ls_model_name",
        "ls_model_type",
        "ls_temperature",
        "ls_max_tokens",
        "ls_stop",
        "ls_integration",
        "lc_versions",
    )
)


def run_name(serialized: Mapping[str, Any] | None, name: str | None) -> str:
    """The run's name as langchain-core's tracers derive it."""
    if name:
        return name
    if serialized:
        given = serialized.get("name")
        if isinstance(given, str) and given:
            return given
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return "<unknown>"


def is_graph_run(metadata: Mapping[str, Any] | None) -> bool:
    """A LangGraph graph invocation: LangGraph marks its runs ``ls_integration=langgraph``
    and the runs inside a graph's nodes ``langgraph_node``."""
    return bool(
        metadata
        and metadata.get("ls_integration") == "langgraph"
        and "langgraph_node" not in metadata
    )


def model_name(
    serialized: Mapping[str, Any] | None,
    invocation_params: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
) -> str:
    """The requested model: invocation parameters (the model's identifying parameters),
    then langchain-core's ``ls_model_name``, then serialized kwargs, then the class."""
    # A set test skips sources naming no model in one C call (bench_langchain app chain).
    if invocation_params and not _MODEL_KEY_SET.isdisjoint(invocation_params):
        for key in _MODEL_KEYS:
            value = invocation_params.get(key)
            if isinstance(value, str) and value:
                return value
    given = metadata.get("ls_model_name") if metadata else None
    if isinstance(given, str) and given:
        return given
    kwargs = (serialized or {}).get("kwargs")
    if isinstance(kwargs, Mapping) and not _MODEL_KEY_SET.isdisjoint(kwargs):
        for key in _MODEL_KEYS:
            value = kwargs.get(key)
            if isinstance(value, str) and value:
                return value
    if invocation_params:
        kind = invocation_params.get("_type")
        if isinstance(kind, str) and kind:
            return kind
    return run_name(serialized, None)


def model_attributes(
    operation: str,
    model: str,
    invocation_params: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        attr.GEN_AI_OPERATION_NAME: operation,
        attr.GEN_AI_REQUEST_MODEL: model,
    }
    provider = metadata.get("ls_provider") if metadata else None
    attrs[attr.GEN_AI_PROVIDER_NAME] = provider if isinstance(provider, str) else "langchain"
    params = invocation_params or {}
    for keys, name in (
        (("temperature", "ls_temperature"), attr.GEN_AI_REQUEST_TEMPERATURE),
        (("max_tokens", "ls_max_tokens"), attr.GEN_AI_REQUEST_MAX_TOKENS),
    ):
        value = params.get(keys[0])
        if value is None and metadata:
            value = metadata.get(keys[1])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[name] = value
    return attrs


def tool_attributes(
    name: str, serialized: Mapping[str, Any] | None, tool_call_id: object
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        attr.GEN_AI_OPERATION_NAME: "execute_tool",
        attr.GEN_AI_TOOL_NAME: name,
        attr.GEN_AI_TOOL_TYPE: "function",
    }
    description = (serialized or {}).get("description")
    if isinstance(description, str) and description:
        attrs[attr.GEN_AI_TOOL_DESCRIPTION] = description
    if isinstance(tool_call_id, str) and tool_call_id:
        attrs[attr.GEN_AI_TOOL_CALL_ID] = tool_call_id
    return attrs


def result_attributes(response: Any, streamed: bool) -> dict[str, Any]:
    """Usage, response model, finish reasons of an ``LLMResult``."""
    llm_output = getattr(response, "llm_output", None) or {}
    usage = llm_output.get("token_usage") or llm_output.get("usage") or {}
    generations = getattr(response, "generations", None) or []
    gens = generations[0] if generations else []
    input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
    output_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
    response_model = llm_output.get("model_name") or llm_output.get("model")
    response_id = llm_output.get("id")
    reasons: list[str] = []
    for g in gens:
        reason = genai.finish_reason(g)
        if reason:
            reasons.append(reason)
        message = getattr(g, "message", None)
        meta = getattr(message, "response_metadata", None) or {}
        usage_md = getattr(message, "usage_metadata", None)
        if usage_md and input_tokens is None:
            input_tokens = usage_md.get("input_tokens")
            output_tokens = usage_md.get("output_tokens")
        if not response_model:
            response_model = meta.get("model_name") or meta.get("model")
        if not response_id:  # the provider's id (not the message id langchain-core makes up)
            response_id = meta.get("id")
    attrs: dict[str, Any] = {attr.GEN_AI_REQUEST_STREAM: streamed}
    if isinstance(input_tokens, int):
        attrs[attr.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if isinstance(output_tokens, int):
        attrs[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    if isinstance(response_model, str) and response_model:
        attrs[attr.GEN_AI_RESPONSE_MODEL] = response_model
    if isinstance(response_id, str) and response_id:
        attrs[attr.GEN_AI_RESPONSE_ID] = response_id
    if reasons:
        attrs[attr.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    return attrs


def output_messages(response: Any) -> list[dict[str, Any]]:
    generations = getattr(response, "generations", None) or []
    return [genai.output_message(g) for g in (generations[0] if generations else [])]


def input_messages(messages: Any) -> list[dict[str, Any]]:
    return [genai.input_message(m) for batch in messages or [] for m in batch]


def prompt_messages(prompts: Any) -> list[dict[str, Any]]:
    return [genai.text_message("user", p) for p in prompts or []]
