"""Shared test helpers: the public recorders of :mod:`spanhook.testing`."""

from __future__ import annotations

from spanhook.testing import AsyncRecorder, Event, Recorder

__all__ = ["AsyncRecorder", "Event", "Recorder"]
