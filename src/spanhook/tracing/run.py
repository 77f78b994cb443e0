"""Moved: the run lives in :mod:`spanhook.runtime.run`, its scope in
:mod:`spanhook.runtime.scope`, the vocabulary in :mod:`spanhook.events`. Re-exported here
for existing imports."""

from spanhook.callbacks.events import adispatch_custom_event, dispatch_custom_event
from spanhook.events import KIND_EVENTS
from spanhook.runtime.content import content_attribute as _content_attribute
from spanhook.runtime.run import Run, RunKind, current_run
from spanhook.runtime.scope import (
    NO_REQUEST,
    SCOPED_HANDLERS,
    Owner,
    Request,
    RunDefaults,
    handlers_in_scope,
)
from spanhook.runtime.spans import RUN_KEY as _RUN_KEY
from spanhook.runtime.spans import SPAN_KEY as _SPAN_KEY
from spanhook.runtime.spans import light_span as _light_span
from spanhook.runtime.spans import new_run_id
from spanhook.runtime.start import start_run

__all__ = [
    "KIND_EVENTS",
    "NO_REQUEST",
    "SCOPED_HANDLERS",
    "_RUN_KEY",
    "_SPAN_KEY",
    "Owner",
    "Request",
    "Run",
    "RunDefaults",
    "RunKind",
    "_content_attribute",
    "_light_span",
    "adispatch_custom_event",
    "current_run",
    "dispatch_custom_event",
    "handlers_in_scope",
    "new_run_id",
    "start_run",
]
