"""Caseload and outcomes from parts kept per case equal the figures recomputed from every case.

The API keeps each case's part of the figures by revision and recomputes only the parts of cases
that changed (``fhir_cm.api._parts``). These tests compare its answers with ``compute_caseload`` and
``compute_outcomes`` over every stored case — first, after cases change, and after one is added.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient

from fhir_cm.caseload import compute_caseload
from fhir_cm.domain import (
    Case,
    CareSetting,
    CaseStatus,
    Contact,
    ContactMode,
    Period,
    ProgrammeType,
    Stay,
    StayStatus,
)
from fhir_cm.outcomes import compute_outcomes, outcome_parts
from fhir_cm.store import Store, list_cases, save_case
from fhir_cm.synthetic import generate_cases
from tests.api.conftest import TODAY, Keys, bearer

PERIOD = {"from": "2024-07-01", "to": "2025-06-30"}


def _expected(store: Store, programme: ProgrammeType | None = None) -> tuple[Any, Any]:
    with store.session(read_only=True) as s:
        cases = list_cases(s)
    caseload = [m.model_dump(mode="json") for m in compute_caseload(cases, on=TODAY, limit=20)]
    outcomes = [
        p.model_dump(mode="json")
        for p in compute_outcomes(
            cases,
            start=dt.date(2024, 7, 1),
            end=dt.date(2025, 6, 30),
            today=TODAY,
            programmes=[programme] if programme else None,
        )
    ]
    return caseload, outcomes


def _answers(client: TestClient, key: str) -> tuple[Any, Any]:
    caseload = client.get("/api/v1/caseload", headers=bearer(key))
    outcomes = client.get("/api/v1/outcomes", params=PERIOD, headers=bearer(key))
    assert caseload.status_code == outcomes.status_code == 200
    return caseload.json()["managers"], outcomes.json()["programmes"]


def test_the_kept_parts_give_the_figures_of_every_case(client: TestClient, keys: Keys, api_store: Store) -> None:
    cases = list(generate_cases(60, seed=7, today=TODAY))
    with api_store.session() as s:
        for case in cases:
            save_case(s, case, enqueue=False)
    assert _answers(client, keys.supervisor) == _expected(api_store)

    # Close one open case, record a face-to-face contact on another, add a case: only these change.
    still_open = [c for c in cases if c.is_open]
    closing, visited = still_open[0].model_copy(deep=True), still_open[1].model_copy(deep=True)
    closing.change_status(CaseStatus.CLOSED, TODAY, "goals met")
    visited.contacts = [
        *visited.contacts,
        Contact(id="visit-today", date=TODAY, mode=ContactMode.FACE_TO_FACE, note="home visit"),
    ]
    added = next(iter(generate_cases(1, seed=99, today=TODAY)))
    with api_store.session() as s:
        for case in (closing, visited, added):
            save_case(s, case, enqueue=False)
    caseload, outcomes = _answers(client, keys.supervisor)
    assert (caseload, outcomes) == _expected(api_store)
    seen = {c["case_id"] for m in caseload for c in m["cases"]}
    assert closing.id not in seen
    assert (added.id in seen) is added.is_open


def test_a_programme_supervisor_gets_the_figures_of_that_programme(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    with api_store.session() as s:
        for case in generate_cases(40, seed=11, today=TODAY):
            save_case(s, case, enqueue=False)
    with api_store.session(read_only=True) as s:
        mine = [c for c in list_cases(s) if c.programme is ProgrammeType.HEALTH_CARE]
    outcomes = client.get("/api/v1/outcomes", params=PERIOD, headers=bearer(keys.supervisor_hc)).json()["programmes"]
    expected = compute_outcomes(mine, start=dt.date(2024, 7, 1), end=dt.date(2025, 6, 30), today=TODAY, programmes=None)
    assert outcomes == [p.model_dump(mode="json") for p in expected]


def test_a_readmission_into_a_case_added_later_is_counted_for_the_kept_part_of_the_first(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """The first case's part is kept (its revision did not move) while the patient's new case, of another
    programme, holds the readmission: the answer counts it, as the figures from every case do."""
    cases = list(generate_cases(40, seed=7, today=TODAY))
    with api_store.session() as s:
        for case in cases:
            save_case(s, case, enqueue=False)
    before = _answers(client, keys.supervisor)[1]
    period = {"start": dt.date(2024, 7, 1), "end": dt.date(2025, 6, 30), "today": TODAY}
    first, discharge = next(
        (c, d)
        for c in cases
        for d in outcome_parts(c, **period).open_discharges
        if d.end is not None and d.end <= TODAY - dt.timedelta(days=10)
    )
    assert discharge.end is not None
    again = discharge.end + dt.timedelta(days=5)
    later = Case(
        id="later-case",
        programme=ProgrammeType.REHABILITATION
        if first.programme is not ProgrammeType.REHABILITATION
        else ProgrammeType.HEALTH_CARE,
        status=CaseStatus.ACTIVE,
        period=Period(start=again + dt.timedelta(days=2)),
        patient=first.patient,
        stays=[Stay(id="again", setting=CareSetting.ACUTE_HOSPITAL, status=StayStatus.IN_PROGRESS, start=again)],
    )
    with api_store.session() as s:
        save_case(s, later, enqueue=False)
    after = _answers(client, keys.supervisor)
    assert after == _expected(api_store)
    readmitted = {p["programme"]: p["readmissions_30d"] for p in after[1]}
    assert readmitted[first.programme.value] == 1 + next(
        p["readmissions_30d"] for p in before if p["programme"] == first.programme.value
    )


def test_a_transfer_into_a_case_added_later_takes_the_discharge_off_the_kept_part(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """A supervisor's figures: the first case's stay ended with the hospital sending the person on to
    another (``other-hcf``); the hospital that took them the next day is recorded in a case of another
    programme opened for the same patient. The kept part of the first case still holds the stay, but
    its end was no discharge: the answer counts one discharge fewer, none to follow up."""
    d = dt.date(2025, 3, 5)
    first = Case(
        id="first-case",
        programme=ProgrammeType.HEALTH_CARE,
        status=CaseStatus.ACTIVE,
        period=Period(start=dt.date(2025, 2, 1)),
        patient={"kind": "patient", "id": "p-moved"},  # type: ignore[arg-type]
        stays=[
            Stay(
                id="sent-on",
                setting=CareSetting.ACUTE_HOSPITAL,
                status=StayStatus.FINISHED,
                start=d - dt.timedelta(days=3),
                end=d,
                discharge_disposition="other-hcf",  # type: ignore[arg-type]
            )
        ],
    )
    with api_store.session() as s:
        save_case(s, first, enqueue=False)

    def health_care() -> Any:
        figures = next(p for p in _answers(client, keys.supervisor)[1] if p["programme"] == "health-care")
        return figures["hospital_discharges"], figures["discharges_without_follow_up"]

    assert health_care() == (1, 1)
    taken_in = Case(
        id="taken-in",
        programme=ProgrammeType.REHABILITATION,
        status=CaseStatus.ACTIVE,
        period=Period(start=d + dt.timedelta(days=1)),
        patient=first.patient,
        stays=[
            Stay(
                id="there",
                setting=CareSetting.ACUTE_HOSPITAL,
                status=StayStatus.IN_PROGRESS,
                start=d + dt.timedelta(days=1),
            )
        ],
    )
    with api_store.session() as s:
        save_case(s, taken_in, enqueue=False)
    assert health_care() == (0, 0)
    assert _answers(client, keys.supervisor)[1] == _expected(api_store)[1]
