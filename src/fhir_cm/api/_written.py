"""The days of a case read from a date its sources wrote as a year or a month, for the routes that show them.

A reader must not take such a day for one someone set (a referral "to be done in March" is held as
due by March 31): the case's read works them out from its stored resources; the lists (the caseload,
the transitions, the worklist) read them stored with the case (``CaseRecord.dates_as_written``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_cm.domain import Case
from fhir_cm.store import Store, list_case_records, stored_dates_as_written
from fhir_cm.worklist import WorklistItem

__all__ = ["case_dates_as_written", "items_as_written"]


def case_dates_as_written(store: Store, case: Case, identifier_system: str) -> dict[str, str]:
    """``case``'s days read from a year or a month its stored resources hold: JSON pointer into the case →
    the date as written (see ``mapping.dates_as_written``); empty for a case with no stored resources."""
    with store.session(read_only=True) as session:
        return stored_dates_as_written(session, case, identifier_system)


def items_as_written(store: Store, items: Sequence[WorklistItem]) -> list[WorklistItem]:
    """``items`` with their ``dates_as_written``: each date read from a year or a month, as written.

    The cases' maps are stored with them (``CaseRecord.dates_as_written``), so a page of items reads
    its few cases' rows (from the store's decoded cache where it can) and no resource."""
    wanted = {item.case_id for item in items if item.sources}
    if not wanted:
        return list(items)
    with store.session(read_only=True) as session:
        records = {r.case.id: r for r in list_case_records(session, ids=wanted, cache=store.cases, skipped=[])}
    out = []
    for item in items:
        record = records.get(item.case_id)
        said = record.dates_as_written if record is not None else {}
        as_written = {
            at: said[pointer]
            for at, source in item.sources.items()
            if record is not None and (pointer := _pointer(record.case, *source)) in said
        }
        out.append(item.model_copy(update={"dates_as_written": as_written}) if as_written else item)
    return out


def _pointer(case: Case, name: str, entity_id: str, field: str) -> str | None:
    """The JSON pointer into ``case`` of that entity's field (``/goals/2/due``), if the case holds it."""
    i = next((i for i, entity in enumerate(getattr(case, name)) if entity.id == entity_id), None)
    return None if i is None else f"/{name}/{i}/{field}"
