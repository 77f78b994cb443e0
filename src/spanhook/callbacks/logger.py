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
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from typing import IO, Any
from uuid import UUID

from spanhook.callbacks.tracker import RunInfo, RunTracker
from spanhook.callbacks.usage import usage_from_result
from spanhook.schema.agent import retry_error
from spanhook.tracing import attributes as attr

_internal = logging.getLogger("spanhook.callbacks")

DEFAULT_LOGGER = "spanhook.requests"


def render_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def retry_fields(retry_state: Any) -> dict[str, Any]:
    """The attempt number and the error type an ``on_retry`` event reports."""
    error = retry_error(retry_state)
    return {
        "attempt": int(getattr(retry_state, "attempt_number", 0)),
        "error_type": type(error).__qualname__ if error is not None else None,
    }


class RequestLoggerCallbackHandler(RunTracker):
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
        super().__init__()

    # -- plumbing ----------------------------------------------------------------------
    def _content(self, value: Any) -> str:
        return attr.truncate(attr.to_json(value), self.max_content_length)

    def run_started(self, run: RunInfo) -> None:
        record = self._base(f"{run.kind}_start", run.run_id, run)
        if self.log_content:
            key, value = _START_CONTENT[run.kind](run.inputs)
            record[key] = self._content(value)
        self._emit(self.level, f"{run.kind} {run.name!r} started", record)

    def _base(self, event: str, run_id: UUID, run: RunInfo | None) -> dict[str, Any]:
        seen = run if run is not None and run.start_ns is not None else None
        return {
            "event": event,
            "run_id": str(run_id),
            "parent_run_id": str(seen.parent_run_id) if seen and seen.parent_run_id else None,
            "trace_id": seen.trace_id if seen else None,
            "span_id": seen.span_id if seen else None,
            "run_kind": run.kind if run is not None else None,
            "run_name": seen.name if seen else None,
            "tags": seen.tags if seen else [],
        }

    def _finish(self, run: RunInfo, outcome: str) -> tuple[dict[str, Any], str]:
        record = self._base(f"{run.kind}_{outcome}", run.run_id, run)
        if run.duration_ms is not None:
            record["duration_ms"] = round(run.duration_ms, 3)
            return record, f"{run.kind} {run.name!r}"
        return record, run.kind

    def run_ended(self, run: RunInfo, output: Any, kwargs: dict[str, Any]) -> None:
        record, label = self._finish(run, "end")
        if run.signal is not None:  # paused or redirected by LangGraph: no output
            record["signal"] = run.signal
            took = f" after {record['duration_ms']:.1f} ms" if "duration_ms" in record else ""
            self._emit(self.level, f"{label} stopped by {run.signal}{took}", record)
            return
        key, value, extra = _END_CONTENT[run.kind](output)
        if run.kind in ("llm", "chat_model") and run.start_ns is not None:
            record["streamed_tokens"] = run.tokens
        record.update(extra)
        if self.log_content:
            record[key] = self._content(value)
        took = f" in {record['duration_ms']:.1f} ms" if "duration_ms" in record else ""
        usage = ""
        if "prompt_tokens" in record:
            usage = f" ({record['prompt_tokens']} prompt + {record['completion_tokens']} completion tokens)"
        self._emit(self.level, f"{label} ended{took}{usage}", record)

    def run_failed(self, run: RunInfo, error: BaseException, kwargs: dict[str, Any]) -> None:
        record, label = self._finish(run, "error")
        record["error_type"] = type(error).__qualname__
        record["error"] = attr.truncate(str(error), self.max_content_length)
        took = f" after {record['duration_ms']:.1f} ms" if "duration_ms" in record else ""
        what = attr.truncate(render_error(error), self.max_content_length)
        self._emit(self.error_level, f"{label} failed{took}: {what}", record)

    def _event(
        self, level: int, event: str, message: str, run_id: UUID, fields: dict[str, Any]
    ) -> None:
        record = self._base(event, run_id, self.active(run_id))
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

    # -- events inside runs ------------------------------------------------------------
    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        index = self.count_token(run_id)
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
        fields = retry_fields(retry_state)
        self._event(
            self.level, "retry", f"retrying after attempt {fields['attempt']}", run_id, fields
        )


RequestLogger = RequestLoggerCallbackHandler


def _chat_messages(messages: Any) -> list[list[dict[str, Any]]]:
    return [
        [{"role": getattr(m, "type", "?"), "content": getattr(m, "content", m)} for m in ms]
        for ms in messages
    ]


def _llm_end(response: Any) -> tuple[str, Any, dict[str, Any]]:
    usage = usage_from_result(response)
    extra: dict[str, Any] = asdict(usage) if usage is not None else {}
    texts = [[g.text for g in gens] for gens in getattr(response, "generations", None) or []]
    return "generations", texts, extra


def _retriever_end(documents: Any) -> tuple[str, Any, dict[str, Any]]:
    docs = [getattr(d, "page_content", d) for d in documents or []]
    return "documents", docs, {"documents_count": len(docs)}


#: Per run kind: the record key and value of the start payload, and of the end payload
#: (plus extra fields).
_START_CONTENT: dict[str, Callable[[Any], tuple[str, Any]]] = {
    "chain": lambda v: ("inputs", v),
    "agent": lambda v: ("inputs", v),
    "llm": lambda v: ("prompts", v),
    "chat_model": lambda v: ("messages", _chat_messages(v)),
    "tool": lambda v: ("input", v),
    "retriever": lambda v: ("query", v),
}
_END_CONTENT: dict[str, Callable[[Any], tuple[str, Any, dict[str, Any]]]] = {
    "chain": lambda v: ("outputs", v, {}),
    "agent": lambda v: ("outputs", v, {}),
    "llm": _llm_end,
    "chat_model": _llm_end,
    "tool": lambda v: ("output", v, {}),
    "retriever": _retriever_end,
}

__all__ = ["RequestLogger", "RequestLoggerCallbackHandler", "render_error", "retry_fields"]
