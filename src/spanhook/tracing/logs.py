"""Log ↔ trace correlation: :class:`RunLogFilter` stamps every log record with the run it
was written in, so your application's own log lines (inside a tool, a model adapter, a
chain) can be found from the trace and the trace from them.

Fields set on each record (empty strings outside any run, so format strings never fail):
``run_id``, ``parent_run_id``, ``run_name``, ``run_kind``, ``trace_id`` (32 hex digits),
``span_id`` (16 hex digits). Outside any spanhook run but inside another OTel span,
``trace_id`` / ``span_id`` are that span's.

    handler = logging.StreamHandler()
    handler.addFilter(spanhook.RunLogFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s [%(trace_id)s %(run_id)s] %(message)s"))
"""

from __future__ import annotations

import logging

from opentelemetry import trace

from spanhook.runtime.run import current_run


class RunLogFilter(logging.Filter):
    """Adds the current run's ids to each record it sees; never drops a record. Attach it
    to a *handler* to cover records from every logger that reaches that handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        run = current_run()
        if run is not None:
            ctx = run.span.get_span_context()
            record.run_id = str(run.run_id)
            record.parent_run_id = str(run.parent_run_id) if run.parent_run_id else ""
            record.run_name = run.name
            record.run_kind = run.kind
        else:
            ctx = trace.get_current_span().get_span_context()
            record.run_id = record.parent_run_id = record.run_name = record.run_kind = ""
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        else:
            record.trace_id = record.span_id = ""
        return True
