"""Callback handlers: the classic ``BaseCallbackHandler`` contract and the built-in handlers."""

from spanhook.callbacks.base import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.callbacks.console import ConsoleCallbackHandler
from spanhook.callbacks.events import adispatch_custom_event, dispatch_custom_event
from spanhook.callbacks.logger import RequestLogger, RequestLoggerCallbackHandler
from spanhook.callbacks.metrics import GenAIMetrics
from spanhook.callbacks.monitor import MonitorCallbackHandler, MonitorHandler
from spanhook.callbacks.stdout import StdOutCallbackHandler, StreamingStdOutCallbackHandler
from spanhook.callbacks.streaming_aiter import AsyncIteratorCallbackHandler
from spanhook.callbacks.usage import UsageCallbackHandler, get_usage_callback
from spanhook.callbacks.websocket import WebSocketCallbackHandler, WebSocketHandler

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
    "StdOutCallbackHandler",
    "StreamingStdOutCallbackHandler",
    "UsageCallbackHandler",
    "WebSocketCallbackHandler",
    "WebSocketHandler",
    "adispatch_custom_event",
    "dispatch_custom_event",
    "get_usage_callback",
]
