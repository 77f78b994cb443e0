"""Runnable examples of spanhook's three callback scenarios (see examples/README.md)."""
