"""Token accounting of a streaming run: chunk count, time to first chunk, token span events.

Attached to a run at its first token; the sync and async token paths share it. Whether each
token is also a span event is a setting (traces with thousands of token events are heavy);
the first token's event, the chunk count and the time to first chunk are always recorded.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace

from spanhook.runtime.content import content_attribute
from spanhook.tracing import attributes as attr
from spanhook.tracing.settings import content_capture_enabled, get_settings

#: A stream's ``plan`` before its first token is delivered (``None``: use plain dispatch).
UNRESOLVED: Any = object()


class TokenStream:
    __slots__ = ("count", "first_ns", "plan")

    def __init__(self) -> None:
        self.count = 0
        self.first_ns = 0
        #: The token plan (:func:`spanhook.runtime.dispatch.token_plan`), resolved once.
        self.plan: Any = UNRESOLVED

    def note(self, span: trace.Span, token: str, n: int) -> None:
        """The ``n``-th token (counted): the first token's time and event, per-token events
        when enabled."""
        if n == 1:
            self.first_ns = time.monotonic_ns()
            span.add_event("spanhook.first_token")
        if get_settings().token_events:
            attrs: dict[str, Any] = {"spanhook.token.index": n - 1}
            if content_capture_enabled():
                text = content_attribute(span, "spanhook.token.text", token)
                if text is not None:
                    attrs["spanhook.token.text"] = text
            span.add_event("spanhook.token", attrs)

    def record(self, span: trace.Span, start_ns: int) -> None:
        """The stream's attributes on the run's span (at its end)."""
        if self.count and span.is_recording():
            span.set_attribute(attr.STREAM_CHUNKS, self.count)
            span.set_attribute(attr.GEN_AI_RESPONSE_TTFC, (self.first_ns - start_ns) / 1e9)
