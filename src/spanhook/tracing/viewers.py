"""Attributes that LLM trace viewers (Arize Phoenix, Langfuse) read, next to ``gen_ai.*``.

The OpenTelemetry GenAI attributes stay the primary vocabulary: Phoenix (>= 15.10) and
Langfuse derive model, token counts, messages, invocation parameters and tool fields from
them. This module adds only what neither can derive (OpenInference names):

- ``openinference.span.kind`` on every run span (chains are otherwise UNKNOWN in Phoenix and
  plain spans in Langfuse; retrievers too in Langfuse);
- ``input.value`` / ``output.value`` with their ``*.mime_type`` on chain, agent, tool and
  retriever spans (and on a model span with no parent run, as JSON messages), mirrored from
  the content spanhook already records: same capture policy, ``redact`` hook and size limit;
- ``retrieval.documents.<i>.document.{content,id,score,metadata}`` on retriever spans;
- ``session.id`` / ``gen_ai.conversation.id``, ``user.id``, ``metadata`` (one JSON
  attribute) and ``tag.tags`` from the run's (already masked and redacted) metadata and tags;
- ``openinference.project.name`` on the resource, from ``service.name`` (Phoenix's project).

It also builds the link to a trace in the configured viewer (:func:`trace_link`).
Never emitted: ``llm.*`` or ``tool.*`` keys (the viewers derive them from ``gen_ai.*``, and
any ``llm.input_messages.*`` key turns Phoenix's own message mapping off).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.util.types import AttributeValue

from spanhook._state import STATE
from spanhook.tracing import attributes as attr
from spanhook.tracing.settings import get_settings

if TYPE_CHECKING:
    from spanhook.runtime.run import Run
    from spanhook.schema import Document

SPAN_KIND = "openinference.span.kind"
INPUT_VALUE = "input.value"
INPUT_MIME_TYPE = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME_TYPE = "output.mime_type"
SESSION_ID = "session.id"
USER_ID = "user.id"
METADATA = "metadata"
TAG_TAGS = "tag.tags"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
DOCUMENTS_PREFIX = "retrieval.documents."
PROJECT_NAME = "openinference.project.name"
JSON_MIME = "application/json"
TEXT_MIME = "text/plain"
#: The redact hook sees retrieved documents' metadata under this key (a list, one per document).
DOCUMENTS_METADATA = "retrieval.documents.metadata"

#: spanhook run kind -> OpenInference span kind (``openinference.span.kind``, on every run).
SPAN_KINDS: dict[str, str] = {
    "chain": "CHAIN",
    "agent": "AGENT",
    "llm": "LLM",
    "chat_model": "LLM",
    "tool": "TOOL",
    "retriever": "RETRIEVER",
}
#: Run metadata keys naming the session (first one present wins) and the user.
SESSION_KEYS = ("session_id", "conversation_id", "thread_id", GEN_AI_CONVERSATION_ID)
USER_KEYS = ("user_id",)
#: Document metadata keys read as the document's relevance score.
SCORE_KEYS = ("score", "relevance_score", "similarity")
#: At most this many documents per retriever span (4 attributes each; spans keep 128).
MAX_DOCUMENTS = 20

#: Content keys mirrored as viewer input/output on every run kind.
_IO_KEYS: dict[str, str] = {
    attr.INPUT: "input",
    attr.OUTPUT: "output",
    attr.GEN_AI_TOOL_CALL_ARGUMENTS: "input",
    attr.GEN_AI_TOOL_CALL_RESULT: "output",
}
#: Model messages, mirrored (as JSON, never plain text) only on a root model span so that a
#: trace list shows the request; nested model spans keep the structured messages alone.
_ROOT_MODEL_IO_KEYS: dict[str, str] = {
    attr.GEN_AI_INPUT_MESSAGES: "input",
    attr.GEN_AI_OUTPUT_MESSAGES: "output",
}
_METADATA_PREFIX_LEN = len(attr.METADATA_PREFIX)


def context_attributes(span_attrs: Mapping[str, Any]) -> Mapping[str, AttributeValue]:
    """A run's session, user, metadata and tags in the forms viewers read, from its start
    attributes (call it for runs with tags or metadata; the span kind is set separately).

    Tags and metadata are read from ``spanhook.tags`` / ``spanhook.metadata.*`` as they are
    about to be recorded (secrets masked, the ``redact`` hook applied), so nothing reaches
    the viewer attributes that those did not let through. Not content: always recorded.
    Nested runs usually share their request's tags and metadata: the result for the same
    recorded values is computed once (read-only; a small, bounded cache)."""
    tags = span_attrs.get(attr.TAGS)
    items = tuple((k, v) for k, v in span_attrs.items() if k.startswith(attr.METADATA_PREFIX))
    key = (tuple(tags) if tags else (), items)
    try:
        known = _context_cache.get(key)
    except TypeError:  # an unhashable value (a list of strings): not cached
        return _context_attributes(tags, items)
    if known is None:
        known = _context_attributes(tags, items)
        if sum(len(str(v)) for _, v in items) <= _CACHED_METADATA_CHARS:
            if len(_context_cache) >= _CONTEXT_CACHE_SIZE:
                _context_cache.clear()
            _context_cache[key] = known
    return known


_context_cache = STATE.viewer_context
_CONTEXT_CACHE_SIZE = 64
_CACHED_METADATA_CHARS = 1024


def _context_attributes(
    tags: Any, items: Sequence[tuple[str, Any]]
) -> Mapping[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    if tags:
        out[TAG_TAGS] = tags
    metadata: dict[str, Any] = {}
    for key, value in items:
        if key == attr.METADATA_OVERFLOW:
            metadata.update(_overflow(value))
        else:
            metadata[key[_METADATA_PREFIX_LEN:]] = value
    if not metadata:
        return out
    out[METADATA] = attr.content_value(metadata, get_settings().max_content_length)
    session = _first(metadata, SESSION_KEYS)
    if session is not None:
        out[SESSION_ID] = out[GEN_AI_CONVERSATION_ID] = session
    user = _first(metadata, USER_KEYS)
    if user is not None:
        out[USER_ID] = user
    return out


def _overflow(value: Any) -> dict[str, Any]:
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):  # truncated past JSON: leave it out
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _first(metadata: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = metadata.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
            return str(value)
    return None


def io_value(recorded: str) -> tuple[str, str]:
    """The viewer form of a recorded content value: ``(value, mime type)``.

    A JSON object with a single string entry is unwrapped to that string, as OpenInference
    does (``{"input": "What is 6 times 7?"}`` shows as the question); other JSON objects and
    arrays stay JSON; anything else is plain text."""
    if not recorded or recorded[0] not in "{[":
        return recorded, TEXT_MIME
    try:
        decoded = json.loads(recorded)
    except ValueError:  # cut past valid JSON, or text that merely starts with a bracket
        return recorded, TEXT_MIME
    if isinstance(decoded, dict):
        if len(decoded) == 1:
            (only,) = decoded.values()
            if isinstance(only, str):
                return only, TEXT_MIME
        return recorded, JSON_MIME
    if isinstance(decoded, list):
        return recorded, JSON_MIME
    return recorded, TEXT_MIME


def content_attributes(has_parent: bool, key: str, recorded: str) -> dict[str, AttributeValue]:
    """The attributes for content ``recorded`` under ``key`` (already redacted, masked and
    truncated): ``key`` itself, plus its ``input.*`` / ``output.*`` mirror where viewers
    need one. Model messages are mirrored, as JSON, only on a model span with no parent run
    (the request itself, so that a trace list shows it)."""
    out: dict[str, AttributeValue] = {key: recorded}
    role = _IO_KEYS.get(key)
    if role is None:
        if has_parent:
            return out
        role = _ROOT_MODEL_IO_KEYS.get(key)
        if role is None:
            return out
        out[f"{role}.value"], out[f"{role}.mime_type"] = recorded, JSON_MIME
        return out
    out[f"{role}.value"], out[f"{role}.mime_type"] = io_value(recorded)
    return out


def document_attributes(
    contents: Sequence[Any] | None,
    docs: Sequence[Document],
    metadata: Sequence[Any] | None,
    limit: int,
) -> dict[str, AttributeValue]:
    """``retrieval.documents.<i>.document.*`` for the first :data:`MAX_DOCUMENTS` documents.

    ``contents`` and ``metadata`` are the (redacted) per-document contents and metadata, or
    ``None`` when the ``redact`` hook replaced the list (then that field is left out for all)."""
    out: dict[str, AttributeValue] = {}
    for i, doc in enumerate(docs[:MAX_DOCUMENTS]):
        prefix = f"{DOCUMENTS_PREFIX}{i}.document."
        if contents is not None and contents[i] is not None:
            out[prefix + "content"] = attr.content_value(contents[i], limit)
        doc_id = _field(doc, "id")
        if doc_id is not None:
            out[prefix + "id"] = attr.safe_str(doc_id)
        meta = metadata[i] if metadata is not None else None
        if isinstance(meta, Mapping) and meta:
            out[prefix + "metadata"] = attr.content_value(dict(meta), limit)
            score = _first_number(meta, SCORE_KEYS)
            if score is not None:
                out[prefix + "score"] = score
    return out


def _first_number(values: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _redacted_list(key: str, values: list[Any], size: int) -> list[Any] | None:
    """``values`` after the ``redact`` hook; ``None`` if the hook dropped or reshaped it."""
    out = attr.redacted(get_settings().redact, key, values)
    return out if isinstance(out, list) and len(out) == size else None


def record_documents(run: Run, docs: Sequence[Document]) -> None:
    """Record a retriever's output if content capture is on: ``spanhook.output`` (the page
    contents, as before) with its ``output.value`` mirror, and one document entry each.

    The ``redact`` hook sees the page contents once, under ``spanhook.output`` (its result
    feeds both the output and the documents' content), and the documents' metadata under
    ``retrieval.documents.metadata``."""
    if not run.capturing():
        return
    settings = get_settings()
    count, contents = attr.documents_content(docs)
    redacted = attr.redacted(settings.redact, attr.OUTPUT, contents)
    attrs: dict[str, AttributeValue] = {}
    if redacted is not None:
        attrs.update(
            content_attributes(
                run.parent_run_id is not None,
                attr.OUTPUT,
                attr.content_value(redacted, settings.max_content_length),
            )
        )
    if count is None:  # not a list of documents: its marked representation only
        run.span.set_attributes(attrs)
        return
    per_doc = redacted if isinstance(redacted, list) and len(redacted) == count else None
    shown = docs[:MAX_DOCUMENTS]
    metas = [_metadata_of(d) for d in shown]
    metadata = None
    if any(metas):
        metadata = _redacted_list(DOCUMENTS_METADATA, metas, len(shown))
    attrs.update(document_attributes(per_doc, docs, metadata, settings.max_content_length))
    run.span.set_attributes(attrs)


def _field(doc: object, name: str) -> Any:
    """A document's field, or ``None`` if it has none or reading it raises."""
    try:
        return getattr(doc, name, None)
    except Exception:
        return None


def _metadata_of(doc: object) -> Any:
    meta = _field(doc, "metadata")
    return meta if isinstance(meta, Mapping) else None


def with_project(resource: Resource) -> Resource:
    """``resource`` plus ``openinference.project.name`` = its ``service.name`` (Phoenix routes
    traces to projects by that attribute and ignores ``service.name``). A project name
    already set (``OTEL_RESOURCE_ATTRIBUTES=openinference.project.name=...``) is kept, and
    the SDK's ``unknown_service`` default names no project (Phoenix's ``default`` then)."""
    attrs = resource.attributes
    service = attrs.get(SERVICE_NAME)
    if PROJECT_NAME in attrs or not isinstance(service, str) or not service:
        return resource
    if service.startswith("unknown_service"):
        return resource
    return resource.merge(Resource({PROJECT_NAME: service}))


#: The trace link setting: a URL template with ``{trace_id}``, or a Jaeger UI base URL.
TRACE_VIEWER_ENV = "SPANHOOK_TRACE_VIEWER_URL"
#: The older setting (a Jaeger UI base URL), still read when the one above is unset.
JAEGER_UI_ENV = "SPANHOOK_JAEGER_UI"
JAEGER_DEFAULT = "http://localhost:16686/trace/{trace_id}"
PHOENIX_TEMPLATE = "http://127.0.0.1:6006/redirects/traces/{trace_id}"


def trace_link(trace_id: str, template: str | None = None) -> str:
    """The link to trace ``trace_id`` (32 hex digits) in the configured viewer.

    ``template`` (default: ``$SPANHOOK_TRACE_VIEWER_URL``, else ``$SPANHOOK_JAEGER_UI``, else
    Jaeger on localhost) is a URL with a ``{trace_id}`` placeholder, e.g. Phoenix's
    ``http://127.0.0.1:6006/redirects/traces/{trace_id}``; a URL without one is a Jaeger UI
    base and gets ``/trace/<id>`` appended."""
    if template is None:
        template = os.environ.get(TRACE_VIEWER_ENV) or os.environ.get(JAEGER_UI_ENV) or ""
    template = template.strip() or JAEGER_DEFAULT
    if "{trace_id}" not in template:
        return f"{template.rstrip('/')}/trace/{trace_id}"
    return template.replace("{trace_id}", trace_id)
