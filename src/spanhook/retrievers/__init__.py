"""Retrievers."""

from spanhook.retrievers.base import BaseRetriever, InMemoryRetriever

__all__ = ["BaseRetriever", "InMemoryRetriever"]
