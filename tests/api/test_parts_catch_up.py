"""The kept parts catching up with a store that changed: after the first look a view reads the revisions
of the cases saved since, not every selected case's, and ends as a view built afresh would."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import delete

import fhir_cm.api._parts as parts_module
from fhir_cm.api._models import OPEN_STATUSES
from fhir_cm.api._parts import CaseParts
from fhir_cm.domain import CaseStatus
from fhir_cm.store import CaseRecord, Store, save_case
from fhir_cm.store._tables import StoreChangeRow
from fhir_cm.synthetic import generate_cases
from tests.api.test_fhir_facade_kept import pg_database, store

__all__ = ["pg_database", "store"]  # the fixtures, used by name

TODAY = dt.date(2025, 6, 1)


@pytest.fixture
def revisions_read(monkeypatch: pytest.MonkeyPatch) -> list[list[str] | None]:
    """Per reading of revisions, the case ids it was limited to (None: every selected case)."""
    calls: list[list[str] | None] = []
    real = parts_module.case_revisions

    def counting(session: Any, **filters: Any) -> Any:
        calls.append(filters.get("ids"))
        return real(session, **filters)

    monkeypatch.setattr(parts_module, "case_revisions", counting)
    return calls


def _part(record: CaseRecord) -> tuple[str, str, int]:
    return record.case.id, record.case.status.value, record.revision


def _open_parts(parts: CaseParts, store: Store) -> list[Any]:
    found, unreadable = parts.every_part(store, "open", _part, status=list(OPEN_STATUSES))
    assert not unreadable
    return list(found)


def test_a_view_reads_only_the_revisions_of_the_cases_saved_since(
    store: Store, revisions_read: list[list[str] | None]
) -> None:
    parts = CaseParts()
    first = _open_parts(parts, store)
    assert revisions_read == [None] and [p[0] for p in first] == sorted(p[0] for p in first)

    cases = list(generate_cases(6, 31))
    open_ones = [c for c in cases if c.is_open]
    closing = open_ones[0].model_copy(deep=True)
    closing.change_status(CaseStatus.CLOSED, TODAY, "goals met")
    changed = open_ones[1].model_copy(update={"plan_summary": "Reviewed."})
    added = next(c for c in generate_cases(3, 77) if c.is_open)
    with store.session() as s:
        for case in (closing, changed, added):
            save_case(s, case)
    second = _open_parts(parts, store)
    assert revisions_read[1:] == [sorted([closing.id, changed.id, added.id])]
    assert closing.id in {p[0] for p in first} and closing.id not in {p[0] for p in second}, "closed: dropped"
    assert added.id in {p[0] for p in second}
    assert second == _open_parts(CaseParts(), store), "as a view built afresh, in id order"

    del revisions_read[:]
    assert _open_parts(parts, store) == second and revisions_read == [], "nothing saved since: nothing read"


def test_a_store_whose_counters_were_reset_is_read_in_full_again(
    store: Store, revisions_read: list[list[str] | None]
) -> None:
    parts = CaseParts()
    _open_parts(parts, store)
    with store.session() as s:
        s.execute(delete(StoreChangeRow))
    case = next(c for c in generate_cases(6, 31) if c.is_open).model_copy(update={"plan_summary": "After the reset."})
    with store.session() as s:
        save_case(s, case)
    assert _open_parts(parts, store) == _open_parts(CaseParts(), store)
    assert revisions_read == [None, None, None], "the view read in full again, as the fresh one did"


def test_past_many_changes_a_view_reads_every_selected_case_again(
    store: Store, revisions_read: list[list[str] | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull merging thousands of cases: one query over the selection, not thousands of ids asked for."""
    monkeypatch.setattr(parts_module, "_BY_ID_UP_TO", 1)
    parts = CaseParts()
    _open_parts(parts, store)
    open_ones = [c for c in generate_cases(6, 31) if c.is_open]
    closing = open_ones[0].model_copy(deep=True)
    closing.change_status(CaseStatus.CLOSED, TODAY, "goals met")
    with store.session() as s:
        save_case(s, closing)
        save_case(s, open_ones[1].model_copy(update={"plan_summary": "Reviewed."}))
    assert _open_parts(parts, store) == _open_parts(CaseParts(), store)
    assert revisions_read == [None, None, None]


def test_a_save_that_changes_no_part_gives_the_very_same_parts_again(store: Store) -> None:
    """A case saved with nothing the view shows changed (its plan summary, to a view of statuses): the part
    worked out again equals the one kept, so the view gives the same tuples as before — a caller may keep
    what it made of them — and a view derived from them gives its own again without going through them.
    A part that did change gives new ones, as a view built afresh would."""
    parts = CaseParts()

    def status_of(record: CaseRecord) -> tuple[str, str]:
        return record.case.id, record.case.status.value

    def look(parts: CaseParts = parts) -> tuple[Any, Any]:
        return parts.for_everyone(store, TODAY, "statuses", status_of, status=list(OPEN_STATUSES))

    first, derived = look(), parts.derived(store, "ids", look()[0], lambda part: part[0])
    open_ones = [c for c in generate_cases(6, 31) if c.is_open]
    with store.session() as s:
        save_case(s, open_ones[1].model_copy(update={"plan_summary": "Reviewed."}))
    again = look()
    assert again[0] is first[0] and again[1] is first[1]
    assert parts.derived(store, "ids", again[0], lambda part: part[0]) is derived

    closing = open_ones[0].model_copy(deep=True)
    closing.change_status(CaseStatus.ON_HOLD, TODAY, "in hospital")
    with store.session() as s:
        save_case(s, closing)
    moved = look()
    assert moved[0] is not first[0] and (closing.id, "on-hold") in [s.part for s in moved[0]]
    assert moved[0] == look(CaseParts())[0], "as a view built afresh"
    assert parts.derived(store, "ids", moved[0], lambda part: part[0]) is not derived
