"""Chat models."""

from spanhook.chat_models.base import BaseChatModel, SimpleChatModel
from spanhook.chat_models.fake import FakeListChatModel, OfflineChatModel
from spanhook.chat_models.openai import ChatOpenAI

__all__ = [
    "BaseChatModel",
    "ChatOpenAI",
    "FakeListChatModel",
    "OfflineChatModel",
    "SimpleChatModel",
]
