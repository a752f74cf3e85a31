"""How people and counts read in the demo's lines: by name with their id, and as sentences."""

from __future__ import annotations

from ..domain import Party


def _who(party: Party) -> str:
    """A person as a case manager knows them, with the id the API and ``apikey create`` take: ``Ada Lee (3f2a…)``.

    The full id, never a prefix: an id shortened for the eye does not work where an id is asked for.
    """
    return f"{party.name} ({party.id})" if party.name else party.id


def _n(count: int, noun: str) -> str:
    """``1 goal``, ``3 goals``: counts read as sentences."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
