"""The moves between care settings the store knows (read off the stays, with what the tracker recorded)."""

from __future__ import annotations

from ..store import RecordedTransition, Store, UnreadableCase, case_transitions, get_case_record

__all__ = ["list_transitions"]


def list_transitions(
    store: Store, case_id: str | None = None, *, skipped: list[UnreadableCase] | None = None
) -> list[RecordedTransition]:
    """Every case's transitions (or ``case_id``'s), oldest first per case; ``skipped`` as for
    ``case_transitions``.

    Raises :class:`LookupError` for a ``case_id`` the store does not hold: an empty list would read
    as "a case without moves" when the id was mistyped.
    """
    with store.session(read_only=True) as session:
        if case_id is not None and get_case_record(session, case_id) is None:
            raise LookupError(f"no case {case_id}")
        return case_transitions(session, case_id, skipped=skipped)
