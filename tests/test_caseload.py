"""Caseload per case manager on hand-built cases, with the expected numbers worked out by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_cm.caseload import compute_caseload
from fhir_cm.domain import Case

ON = dt.date(2025, 6, 30)


def case(case_id: str, manager: str | None, contacts: list[tuple[str, str]] = (), **fields: Any) -> Case:  # type: ignore[assignment]
    base: dict[str, Any] = {
        "id": case_id,
        "programme": "health-care",
        "period": {"start": "2025-01-01"},
        "patient": {"kind": "patient", "id": f"p-{case_id}"},
        "case_manager": {"kind": "practitioner", "id": manager} if manager else None,
        "contacts": [{"id": f"{case_id}-c{i}", "date": d, "mode": m} for i, (d, m) in enumerate(contacts)],
    }
    return Case.model_validate(base | fields)


CASES = [
    case("a", "cm-1", [("2025-06-20", "face-to-face"), ("2025-06-29", "phone")]),  # 10 days (phone does not count)
    case("b", "cm-1"),  # never seen face to face
    case("b2", "cm-1", [("2025-04-01", "face-to-face")], status="on-hold"),  # 90 days; on hold is still open
    case(
        "c",
        "cm-1",
        [("2025-06-29", "face-to-face")],
        status="closed",
        period={"start": "2025-01-01", "end": "2025-06-01"},
    ),
    case("d", "cm-2", [("2025-05-01", "face-to-face"), ("2025-07-05", "face-to-face")]),  # 07-05 not yet made: 60
    case("e", None, [("2025-06-01", "face-to-face")]),  # unassigned: 29 days
]


def test_caseload_per_manager() -> None:
    cm1, cm2, nobody = compute_caseload(CASES, on=ON, limit=2)
    # cm-1: a, b, b2 open (c is closed) -> 3 > 2; gaps 10 and 90 -> mean 50, max 90; b never seen.
    assert (cm1.case_manager, cm1.open_cases, cm1.over_limit) == ("cm-1", 3, True)
    assert [(c.case_id, c.days_since_face_to_face) for c in cm1.cases] == [("a", 10), ("b", None), ("b2", 90)]
    assert (cm1.average_days_since_face_to_face, cm1.max_days_since_face_to_face, cm1.cases_never_seen) == (50.0, 90, 1)
    assert cm1.cases[0].last_face_to_face == dt.date(2025, 6, 20)
    # cm-2: a contact after the reference day had not happened on it (and no gap is negative).
    assert (cm2.case_manager, cm2.open_cases, cm2.over_limit, cm2.max_days_since_face_to_face) == ("cm-2", 1, False, 60)
    # Unassigned cases come last.
    assert (nobody.case_manager, nobody.open_cases, nobody.average_days_since_face_to_face) == (None, 1, 29.0)


def test_exactly_at_the_limit_is_not_over_it() -> None:
    (cm1, *_rest) = compute_caseload(CASES, on=ON, limit=3)
    assert (cm1.open_cases, cm1.over_limit) == (3, False)


def test_no_open_cases_no_rows() -> None:
    assert compute_caseload([CASES[3]], on=ON, limit=20) == []


def test_the_caseload_of_a_past_day_counts_each_case_as_it_was_then() -> None:
    history = [
        {"status": "active", "start": "2025-01-01", "end": "2025-05-01"},
        {"status": "closed", "start": "2025-05-01", "reason": "Goals met"},
    ]
    closed_since = case(
        "f",
        "cm-1",
        [("2025-03-01", "face-to-face"), ("2025-04-20", "face-to-face")],
        status="closed",
        status_history=history,
        period={"start": "2025-01-01", "end": "2025-05-01"},
    )
    opened_since = case("g", "cm-1", [("2025-06-01", "face-to-face")], period={"start": "2025-05-15"})
    (cm1,) = compute_caseload([closed_since, opened_since], on=dt.date(2025, 4, 10), limit=20)
    # On 04-10, f was open and last seen on 03-01 (the 04-20 visit had not happened); g did not exist.
    assert [(c.case_id, c.status.value, c.days_since_face_to_face) for c in cm1.cases] == [("f", "active", 40)]
    (later,) = compute_caseload([closed_since, opened_since], on=ON, limit=20)
    assert [c.case_id for c in later.cases] == ["g"]


def test_case_managers_are_named_with_their_id() -> None:
    named = case("h", "cm-9", case_manager={"kind": "practitioner", "id": "cm-9", "name": "Ada Lovelace"})
    (row,) = compute_caseload([named], on=ON, limit=20)
    assert (row.case_manager, row.case_manager_name) == ("cm-9", "Ada Lovelace")
