"""The days of a case read from a date its sources wrote as a year or a month, for the routes that show them.

A reader must not take such a day for one someone set (a referral "to be done in March" is held as
due by March 31): the case's read works them out from its stored resources; the lists (the caseload,
the transitions, the worklist: ``jobs.items_as_written``) read them stored with the case
(``CaseRecord.dates_as_written``).
"""

from __future__ import annotations

from fhir_cm.domain import Case
from fhir_cm.store import Store, stored_dates_as_written

__all__ = ["case_dates_as_written"]


def case_dates_as_written(store: Store, case: Case, identifier_system: str) -> dict[str, str]:
    """``case``'s days read from a year or a month its stored resources hold: JSON pointer into the case →
    the date as written (see ``mapping.dates_as_written``); empty for a case with no stored resources."""
    with store.session(read_only=True) as session:
        return stored_dates_as_written(session, case, identifier_system)
