"""Moved to :mod:`spanhook.runtime.streams` (kept as a re-export)."""

from spanhook.runtime.streams import adrive, drive

__all__ = ["adrive", "drive"]
