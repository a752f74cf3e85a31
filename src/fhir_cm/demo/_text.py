"""How ids and counts read in the demo's lines: short, and as sentences."""

from __future__ import annotations


def _short(entity_id: str) -> str:
    return entity_id[:8]


def _n(count: int, noun: str) -> str:
    """``1 goal``, ``3 goals``: counts read as sentences."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
