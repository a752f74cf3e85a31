"""The moves between care settings the store knows (read off the stays, with what the tracker recorded)."""

from __future__ import annotations

from ..store import RecordedTransition, Store, case_transitions

__all__ = ["list_transitions"]


def list_transitions(store: Store, case_id: str | None = None) -> list[RecordedTransition]:
    """Every case's transitions (or ``case_id``'s), oldest first per case."""
    with store.session(read_only=True) as session:
        return case_transitions(session, case_id)
