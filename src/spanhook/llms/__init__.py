"""Text-completion models: the ``LLM`` base, ``FakeListLLM`` and the offline model."""

from spanhook.llms.base import LLM
from spanhook.llms.fake import FakeListLLM
from spanhook.llms.offline import OfflineLLM

__all__ = ["LLM", "FakeListLLM", "OfflineLLM"]
