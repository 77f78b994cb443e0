"""Shutting several span processors down side by side, within one time budget."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import SpanProcessor

logger = logging.getLogger("spanhook.export")


def shutdown_together(processors: Sequence[SpanProcessor], timeout: float) -> None:
    """Shut ``processors`` down side by side, each with the whole ``timeout``, and return
    within about ``timeout`` seconds: several exporters to a down collector cost one budget,
    not one each. A processor whose ``shutdown`` takes ``timeout_millis`` gets the budget."""

    def stop(p: SpanProcessor) -> None:
        try:
            if "timeout_millis" in inspect.signature(p.shutdown).parameters:
                p.shutdown(timeout_millis=int(timeout * 1000))  # type: ignore[call-arg]
            else:
                p.shutdown()
        except Exception:
            logger.exception("span processor %r failed to shut down", p)

    if len(processors) == 1:
        stop(processors[0])
        return
    deadline = time.monotonic() + timeout
    threads = [
        threading.Thread(target=stop, args=(p,), name="spanhook-shutdown", daemon=True)
        for p in processors
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 0.1)
