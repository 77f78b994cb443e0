"""Chains."""

from spanhook.chains.base import Chain
from spanhook.chains.llm import LLMChain
from spanhook.chains.sequential import SequentialChain, SimpleSequentialChain

__all__ = ["Chain", "LLMChain", "SequentialChain", "SimpleSequentialChain"]
