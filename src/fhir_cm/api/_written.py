"""The days of a case read from a date its sources wrote as a year or a month, for the routes that show them.

A reader must not take such a day for one someone set (a referral "to be done in March" is held as
due by March 31): the case's read and the caseload say what was written (``mapping.dates_as_written``).
"""

from __future__ import annotations

from fhir_cm.domain import Case
from fhir_cm.mapping import ResourceKey, dates_as_written
from fhir_cm.store import Store, get_resources

__all__ = ["case_dates_as_written"]


def case_dates_as_written(store: Store, case: Case, identifier_system: str) -> dict[str, str]:
    """``case``'s days read from a year or a month its stored resources hold: JSON pointer into the case →
    the date as written (see ``dates_as_written``); empty for a case with no stored resources."""
    with store.session(read_only=True) as session:
        copies = get_resources(session, case.id)
    return dates_as_written(
        case, {ResourceKey(r.resource_type, r.key): (r.fhir_version, r.raw) for r in copies}, identifier_system
    )
