"""Chat models."""

from spanhook.chat_models.base import BaseChatModel, SimpleChatModel
from spanhook.chat_models.fake import FakeListChatModel, OfflineChatModel

__all__ = ["BaseChatModel", "FakeListChatModel", "OfflineChatModel", "SimpleChatModel"]
