"""Content policy: what a run puts on its span, and the copies handlers receive.

Content (prompts, completions, inputs, outputs, tool arguments) reaches a span only when
capture is on, through one path: the ``redact`` hook, then JSON, masked secrets and
truncation (:mod:`spanhook.tracing.attributes`). Metadata becomes ``spanhook.metadata.*``
attributes within the configured budget. Handlers get every payload in full, in process, but
as top-level copies: a handler that mutates the inputs, outputs, documents or generations it
receives cannot change what the caller gets.
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from spanhook.events import SpanRecipe
from spanhook.runtime import spans
from spanhook.schema.outputs import LLMResult
from spanhook.tracing import attributes as attr
from spanhook.tracing import viewers
from spanhook.tracing.settings import content_capture_enabled, get_settings

content_attribute = attr.content_attribute


def record_event(span: trace.Span, recipe: SpanRecipe, args: tuple[Any, ...]) -> None:
    """Add the span event an in-run event's recipe describes."""
    if not span.is_recording():
        return
    attrs: dict[str, Any] = (
        attr.bounded_attributes(recipe.plain(args), get_settings().max_content_length)
        if recipe.plain is not None
        else {}
    )
    if recipe.content is not None and content_capture_enabled():
        for k, v in recipe.content(args).items():
            value = content_attribute(span, k, v)
            if value is not None:
                attrs[k] = value
    span.add_event(recipe.name, attrs)


def record_content(span: trace.Span, key: str, value: Any, has_parent: bool) -> None:
    """Put ``value`` on the span under ``key`` (with the viewers' ``input.*``/``output.*``
    mirror) if content capture is on and the span records."""
    if content_capture_enabled() and span.is_recording():
        recorded = content_attribute(span, key, value)
        if recorded is not None:
            spans.set_attributes(span, viewers.content_attributes(has_parent, key, recorded))


def span_attributes(
    kind: str,
    run_id: str,
    tags: list[str],
    metadata: Mapping[str, Any],
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The attributes a run's span starts with."""
    out: dict[str, Any] = {
        attr.RUN_KIND: kind,
        attr.RUN_ID: run_id,
        viewers.SPAN_KIND: viewers.SPAN_KINDS[kind],
    }
    if not (extra or tags or metadata):  # no settings read (bench_langchain app chain)
        return out
    settings = get_settings()
    if extra:
        out.update(attr.bounded_attributes(extra, settings.max_content_length))
    if tags:
        out[attr.TAGS] = attr.tags_attribute(tags, settings.max_content_length)
    if metadata:
        out.update(
            attr.metadata_attributes(
                metadata,
                settings.max_content_length,
                settings.redact,
                settings.max_metadata_attributes,
            )
        )
    if tags or metadata:
        out.update(viewers.context_attributes(out))
    return out


def copy(value: Any) -> Any:
    """``value`` shallow-copied if it is a container a handler could change in place (dict,
    list, ``LLMResult`` and its generations list)."""
    cls = type(value)
    if cls is dict:
        return value.copy()
    if cls is list:
        return value[:]
    if cls is LLMResult:
        result = _copy.copy(value)
        result.generations = value.generations[:]
        return result
    return value
