"""Callback handlers: the classic ``BaseCallbackHandler`` contract and the built-in handlers."""

from spanhook.callbacks.base import AsyncCallbackHandler, BaseCallbackHandler
from spanhook.callbacks.console import ConsoleCallbackHandler
from spanhook.callbacks.stdout import StdOutCallbackHandler, StreamingStdOutCallbackHandler
from spanhook.callbacks.events import adispatch_custom_event, dispatch_custom_event

__all__ = [
    "AsyncCallbackHandler",
    "BaseCallbackHandler",
    "ConsoleCallbackHandler",
    "StdOutCallbackHandler",
    "StreamingStdOutCallbackHandler",
    "adispatch_custom_event",
    "dispatch_custom_event",
]
