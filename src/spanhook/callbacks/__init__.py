"""Callback handlers: the classic ``BaseCallbackHandler`` contract and the built-in handlers.

Imports are lazy (as in langchain-core): importing ``spanhook.callbacks.base`` does not load
every built-in handler, so the runtime can depend on the contract without a cycle.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spanhook.callbacks.base import AsyncCallbackHandler, BaseCallbackHandler
    from spanhook.callbacks.console import ConsoleCallbackHandler
    from spanhook.callbacks.events import adispatch_custom_event, dispatch_custom_event
    from spanhook.callbacks.logger import RequestLogger, RequestLoggerCallbackHandler
    from spanhook.callbacks.metrics import GenAIMetrics
    from spanhook.callbacks.monitor import MonitorCallbackHandler, MonitorHandler
    from spanhook.callbacks.stdout import StdOutCallbackHandler, StreamingStdOutCallbackHandler
    from spanhook.callbacks.streaming_aiter import AsyncIteratorCallbackHandler
    from spanhook.callbacks.tracker import RunInfo, RunTracker
    from spanhook.callbacks.usage import UsageCallbackHandler, get_usage_callback
    from spanhook.callbacks.websocket import WebSocketCallbackHandler, WebSocketHandler

_dynamic_imports = {
    "AsyncCallbackHandler": "base",
    "BaseCallbackHandler": "base",
    "ConsoleCallbackHandler": "console",
    "adispatch_custom_event": "events",
    "dispatch_custom_event": "events",
    "RequestLogger": "logger",
    "RequestLoggerCallbackHandler": "logger",
    "GenAIMetrics": "metrics",
    "MonitorCallbackHandler": "monitor",
    "MonitorHandler": "monitor",
    "StdOutCallbackHandler": "stdout",
    "StreamingStdOutCallbackHandler": "stdout",
    "AsyncIteratorCallbackHandler": "streaming_aiter",
    "RunInfo": "tracker",
    "RunTracker": "tracker",
    "UsageCallbackHandler": "usage",
    "get_usage_callback": "usage",
    "WebSocketCallbackHandler": "websocket",
    "WebSocketHandler": "websocket",
}

__all__ = [
    "AsyncCallbackHandler",
    "AsyncIteratorCallbackHandler",
    "BaseCallbackHandler",
    "ConsoleCallbackHandler",
    "GenAIMetrics",
    "MonitorCallbackHandler",
    "MonitorHandler",
    "RequestLogger",
    "RequestLoggerCallbackHandler",
    "RunInfo",
    "RunTracker",
    "StdOutCallbackHandler",
    "StreamingStdOutCallbackHandler",
    "UsageCallbackHandler",
    "WebSocketCallbackHandler",
    "WebSocketHandler",
    "adispatch_custom_event",
    "dispatch_custom_event",
    "get_usage_callback",
]


def __getattr__(name: str) -> Any:
    module = _dynamic_imports.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
