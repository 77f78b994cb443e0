"""``RequestLoggerCallbackHandler``: one structured log record per run event.

Every run start, end and error (and, if asked, every streamed token, ``on_text``, agent
action and retry) becomes one record of the stdlib ``logging`` module, with a readable
message and ``extra`` fields a formatter or a JSON log shipper can use:

``spanhook_event`` (``chain_start``, ``llm_end``, ``tool_error``, ...), ``run_id``,
``parent_run_id``, ``trace_id`` / ``span_id`` (the run's OTel span, so logs and traces
correlate), ``run_kind``, ``run_name``, ``tags``, ``duration_ms`` (ends and errors),
``error_type`` (errors), and ``spanhook``: the whole record as a dict.

Content (inputs, outputs, prompts, token text, tool arguments) is logged only with
``log_content=True``, truncated to ``max_content_length`` characters, secrets masked.
Error records always carry the error's type and (truncated) message.

Optionally the same records are written as JSON lines to a file-like object
(``json_stream=``), with or without the logging records (``use_logging=``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any
from uuid import UUID

from spanhook.callbacks.base import BaseCallbackHandler
from spanhook.callbacks.usage import usage_from_result
from spanhook.tracing import attributes as attr

_internal = logging.getLogger("spanhook.callbacks")

#: The run kind each start event means (``chain`` may be refined to ``agent`` by the run).
START_KINDS: dict[str, str] = {
    "on_chain_start": "chain",
    "on_llm_start": "llm",
    "on_chat_model_start": "chat_model",
    "on_tool_start": "tool",
    "on_retriever_start": "retriever",
}

DEFAULT_LOGGER = "spanhook.requests"


@dataclass
class RunIdentity:
    """What a handler learns about a run when it starts."""

    kind: str
    name: str
    trace_id: str | None
    span_id: str | None


def identify_run(event: str, serialized: Any, kwargs: Mapping[str, Any]) -> RunIdentity:
    """Kind, name and OTel ids of the run a start event belongs to.

    Start events are delivered while the run is current, so ``current_run()`` is the run
    itself; its kind (``agent`` vs ``chain``), name and span are used. A start event from
    elsewhere falls back to the event's ``name`` / ``serialized`` and the ambient run's
    trace id.
    """
    from spanhook.tracing.run import current_run  # run.py imports this package

    run = current_run()
    if run is not None and run.run_id == kwargs.get("run_id"):
        return RunIdentity(run.kind, run.name, _valid(run.trace_id), _valid(run.span_id))
    name = kwargs.get("name")
    if not name and isinstance(serialized, Mapping):
        ident = serialized.get("id")
        name = serialized.get("name") or (ident[-1] if isinstance(ident, list) and ident else None)
    trace_id = _valid(run.trace_id) if run is not None else None
    return RunIdentity(START_KINDS.get(event, "chain"), str(name or "<unknown>"), trace_id, None)


def _valid(hex_id: str) -> str | None:
    return None if not hex_id.strip("0") else hex_id


def render_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


@dataclass
class _Active:
    ident: RunIdentity
    parent_run_id: UUID | None
    tags: list[str]
    start_ns: int
    tokens: int = 0


class RequestLoggerCallbackHandler(BaseCallbackHandler):
    """Logs each run's start, end and error through ``logging``, one record per event.

    Args:
        logger: a ``logging.Logger`` or a logger name (default ``"spanhook.requests"``).
        level: level of start/end/event records (default ``INFO``).
        error_level: level of error records (default ``ERROR``).
        token_level: level of token and text records (default ``DEBUG``).
        log_tokens: one record per streamed token (the text only with ``log_content``);
            the number of tokens is on every ``llm_end`` record anyway.
        log_text: one record per ``on_text`` event.
        log_content: include inputs, outputs, prompts, token text and tool arguments.
        max_content_length: longest content value, in characters (longer ones are cut and
            marked with their original length).
        json_stream: also write each record as one JSON line to this file-like object.
        use_logging: emit ``logging`` records (set ``False`` to write JSON lines only).
        run_inline: in async runs, log on the event loop rather than from a worker
            thread (the default; logging handlers are normally quick). Set ``False`` if
            your logging handlers do slow blocking I/O.
    """

    def __init__(
        self,
        logger: logging.Logger | str | None = None,
        *,
        level: int = logging.INFO,
        error_level: int = logging.ERROR,
        token_level: int = logging.DEBUG,
        log_tokens: bool = False,
        log_text: bool = False,
        log_content: bool = False,
        max_content_length: int = 1000,
        json_stream: IO[str] | None = None,
        use_logging: bool = True,
        run_inline: bool = True,
    ) -> None:
        if logger is None:
            logger = DEFAULT_LOGGER
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if not isinstance(logger, logging.Logger):
            raise TypeError(
                f"logger must be a logging.Logger or a logger name, got {type(logger).__name__}"
            )
        for label, value in (
            ("level", level),
            ("error_level", error_level),
            ("token_level", token_level),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{label} must be a logging level (int), got {value!r}")
        if not isinstance(max_content_length, int) or max_content_length < 16:
            raise ValueError(f"max_content_length must be an int >= 16, got {max_content_length!r}")
        if json_stream is not None and not callable(getattr(json_stream, "write", None)):
            raise TypeError(
                f"json_stream must be a file-like object with write(), got {type(json_stream).__name__}"
            )
        if not use_logging and json_stream is None:
            raise ValueError("use_logging=False needs a json_stream to write to")
        self.logger = logger
        self.level = level
        self.error_level = error_level
        self.token_level = token_level
        self.log_tokens = log_tokens
        self.log_text = log_text
        self.log_content = log_content
        self.max_content_length = max_content_length
        self.json_stream = json_stream
        self.use_logging = use_logging
        self.run_inline = run_inline
        #: JSON lines that could not be written (the first failure is logged).
        self.write_errors = 0
        self._lock = threading.Lock()
        self._runs: dict[UUID, _Active] = {}

    # -- plumbing ----------------------------------------------------------------------
    def _content(self, value: Any) -> str:
        return attr.truncate(attr.to_json(value), self.max_content_length)

    def _start(
        self, event: str, serialized: Any, content_key: str, content: Any, kwargs: dict[str, Any]
    ) -> None:
        ident = identify_run(event, serialized, kwargs)
        run_id: UUID = kwargs["run_id"]
        active = _Active(
            ident,
            kwargs.get("parent_run_id"),
            list(kwargs.get("tags") or []),
            time.perf_counter_ns(),
        )
        with self._lock:
            self._runs[run_id] = active
        record = self._base(f"{ident.kind}_start", run_id, active)
        if self.log_content:
            record[content_key] = self._content(content)
        self._emit(self.level, f"{ident.kind} {ident.name!r} started", record)

    def _base(self, event: str, run_id: UUID, active: _Active | None) -> dict[str, Any]:
        record: dict[str, Any] = {
            "event": event,
            "run_id": str(run_id),
            "parent_run_id": None,
            "trace_id": None,
            "span_id": None,
            "run_kind": None,
            "run_name": None,
            "tags": [],
        }
        if active is not None:
            record.update(
                parent_run_id=str(active.parent_run_id) if active.parent_run_id else None,
                trace_id=active.ident.trace_id,
                span_id=active.ident.span_id,
                run_kind=active.ident.kind,
                run_name=active.ident.name,
                tags=active.tags,
            )
        else:
            from spanhook.tracing.run import current_run

            run = current_run()
            if run is not None:
                record["trace_id"] = _valid(run.trace_id)
        return record

    def _finish(
        self, run_id: UUID, fallback_kind: str
    ) -> tuple[_Active | None, dict[str, Any], str]:
        with self._lock:
            active = self._runs.pop(run_id, None)
        record = self._base("", run_id, active)
        if active is not None:
            record["duration_ms"] = round((time.perf_counter_ns() - active.start_ns) / 1e6, 3)
            label = f"{active.ident.kind} {active.ident.name!r}"
        else:
            record["run_kind"] = fallback_kind
            label = fallback_kind
        return active, record, label

    def _end(
        self,
        kind: str,
        content_key: str,
        content: Any,
        run_id: UUID,
        extra: dict[str, Any] | None = None,
    ) -> None:
        _, record, label = self._finish(run_id, kind)
        record["event"] = f"{record['run_kind']}_end"
        if extra:
            record.update(extra)
        if self.log_content:
            record[content_key] = self._content(content)
        took = f" in {record['duration_ms']:.1f} ms" if "duration_ms" in record else ""
        usage = ""
        if "prompt_tokens" in record:
            usage = f" ({record['prompt_tokens']} prompt + {record['completion_tokens']} completion tokens)"
        self._emit(self.level, f"{label} ended{took}{usage}", record)

    def _error(self, kind: str, error: BaseException, run_id: UUID) -> None:
        _, record, label = self._finish(run_id, kind)
        record["event"] = f"{record['run_kind']}_error"
        record["error_type"] = type(error).__qualname__
        record["error"] = attr.truncate(str(error), self.max_content_length)
        took = f" after {record['duration_ms']:.1f} ms" if "duration_ms" in record else ""
        what = attr.truncate(render_error(error), self.max_content_length)
        self._emit(self.error_level, f"{label} failed{took}: {what}", record)

    def _event(
        self, level: int, event: str, message: str, run_id: UUID, fields: dict[str, Any]
    ) -> None:
        with self._lock:
            active = self._runs.get(run_id)
        record = self._base(event, run_id, active)
        record.update(fields)
        self._emit(level, message, record)

    def _emit(self, level: int, message: str, record: dict[str, Any]) -> None:
        if self.use_logging and self.logger.isEnabledFor(level):
            extra = {
                "spanhook_event": record["event"],
                "run_id": record["run_id"],
                "parent_run_id": record["parent_run_id"],
                "trace_id": record["trace_id"],
                "span_id": record["span_id"],
                "run_kind": record["run_kind"],
                "run_name": record["run_name"],
                "tags": record["tags"],
                "duration_ms": record.get("duration_ms"),
                "error_type": record.get("error_type"),
                "spanhook": record,
            }
            self.logger.log(level, "%s [run %s]", message, record["run_id"], extra=extra)
        stream = self.json_stream
        if stream is not None:
            line = json.dumps(
                {
                    "ts": datetime.now(timezone.utc).isoformat(),
                    "level": logging.getLevelName(level),
                    "message": message,
                    **record,
                },
                default=str,
                ensure_ascii=False,
            )
            with self._lock:
                try:
                    stream.write(line + "\n")
                    flush = getattr(stream, "flush", None)
                    if callable(flush):
                        flush()
                except Exception as e:
                    self.write_errors += 1
                    if self.write_errors == 1:
                        _internal.warning(
                            "RequestLogger could not write a JSON line (%r); further failures are "
                            "counted in write_errors, not logged",
                            e,
                        )

    # -- starts ------------------------------------------------------------------------
    def on_chain_start(
        self, serialized: dict[str, Any], inputs: dict[str, Any], **kwargs: Any
    ) -> None:
        self._start("on_chain_start", serialized, "inputs", inputs, kwargs)

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        self._start("on_llm_start", serialized, "prompts", prompts, kwargs)

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[Any]], **kwargs: Any
    ) -> None:
        rendered = [
            [{"role": getattr(m, "type", "?"), "content": getattr(m, "content", m)} for m in ms]
            for ms in messages
        ]
        self._start("on_chat_model_start", serialized, "messages", rendered, kwargs)

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        self._start("on_tool_start", serialized, "input", input_str, kwargs)

    def on_retriever_start(self, serialized: dict[str, Any], query: str, **kwargs: Any) -> None:
        self._start("on_retriever_start", serialized, "query", query, kwargs)

    # -- ends --------------------------------------------------------------------------
    def on_chain_end(self, outputs: dict[str, Any], *, run_id: UUID, **kwargs: Any) -> None:
        self._end("chain", "outputs", outputs, run_id)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        extra: dict[str, Any] = {}
        with self._lock:
            active = self._runs.get(run_id)
            if active is not None:
                extra["streamed_tokens"] = active.tokens
        usage = usage_from_result(response)
        if usage is not None:
            extra.update(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
            )
        texts = [[g.text for g in gens] for gens in getattr(response, "generations", None) or []]
        self._end("llm", "generations", texts, run_id, extra)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end("tool", "output", output, run_id)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        docs = [getattr(d, "page_content", d) for d in documents or []]
        self._end("retriever", "documents", docs, run_id, {"documents_count": len(docs)})

    # -- errors ------------------------------------------------------------------------
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error("chain", error, run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error("llm", error, run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error("tool", error, run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error("retriever", error, run_id)

    # -- events inside runs ------------------------------------------------------------
    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            active = self._runs.get(run_id)
            if active is not None:
                active.tokens += 1
                index = active.tokens - 1
            else:
                index = -1
        if self.log_tokens:
            fields: dict[str, Any] = {"token_index": index}
            if self.log_content:
                fields["token"] = token
            self._event(self.token_level, "llm_token", f"token {index}", run_id, fields)

    def on_text(self, text: str, *, run_id: UUID, **kwargs: Any) -> None:
        if self.log_text:
            fields: dict[str, Any] = {"text_length": len(text)}
            if self.log_content:
                fields["text"] = self._content(text)
            self._event(self.token_level, "text", f"text ({len(text)} chars)", run_id, fields)

    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        fields: dict[str, Any] = {"tool": getattr(action, "tool", None)}
        if self.log_content:
            fields["tool_input"] = self._content(getattr(action, "tool_input", None))
        self._event(
            self.level, "agent_action", f"agent chose tool {fields['tool']!r}", run_id, fields
        )

    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        fields: dict[str, Any] = {}
        if self.log_content:
            fields["output"] = self._content(getattr(finish, "return_values", None))
        self._event(self.level, "agent_finish", "agent finished", run_id, fields)

    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        error = getattr(retry_state, "outcome_error", None)
        fields = {
            "attempt": int(getattr(retry_state, "attempt_number", 0)),
            "error_type": type(error).__qualname__ if error is not None else None,
        }
        self._event(
            self.level, "retry", f"retrying after attempt {fields['attempt']}", run_id, fields
        )


RequestLogger = RequestLoggerCallbackHandler

__all__ = [
    "RequestLogger",
    "RequestLoggerCallbackHandler",
    "RunIdentity",
    "identify_run",
]
