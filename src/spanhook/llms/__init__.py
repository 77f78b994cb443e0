"""Text-completion models: the ``LLM`` base, ``FakeListLLM``, the offline model and ``OpenAI``."""

from spanhook.llms.base import LLM
from spanhook.llms.fake import FakeListLLM
from spanhook.llms.offline import OfflineLLM
from spanhook.llms.openai import OpenAI

__all__ = ["LLM", "FakeListLLM", "OfflineLLM", "OpenAI"]
