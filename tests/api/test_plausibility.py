"""What cannot be true is refused with the field named; the caseload "on" a day is the caseload of that day.

Today is pinned to 2025-06-30 (``conftest.TODAY``); the future tolerance is the default, one day.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fhir_cm.config import Settings

from .conftest import Keys, bearer, create

BASE = "/api/v1/cases/a"


def _fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [e["field"] for e in response.json()["errors"]]


def test_a_contact_in_the_future_is_refused_naming_the_date(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="a")
    h = bearer(keys.cm1)
    response = client.post(f"{BASE}/contacts", json={"date": "2030-01-01", "mode": "face-to-face"}, headers=h)
    assert _fields(response) == ["date"]
    assert "2030" not in response.text  # the value sent is not echoed
    assert client.post(f"{BASE}/contacts", json={"date": "2025-07-01", "mode": "phone"}, headers=h).status_code == 201
    assert client.get(f"{BASE}/contacts", headers=h).json()[0]["date"] == "2025-07-01"


def test_a_goal_achieved_before_it_starts_is_refused_naming_the_start(client: TestClient, keys: Keys) -> None:
    """A goal planned to start in September was taken as achieved in June: the Goal went out with a
    startDate in the future and achievementStatus achieved, which cannot both be true. A goal reached has
    begun, so its start is held to the rule of anything done (not after today), and the 422 names it."""
    create(client, keys.cm1, id="a")
    h = bearer(keys.cm1)
    later = {"id": "g1", "description": "walks 200 m", "start": "2025-09-01", "due": "2025-12-01"}
    assert _fields(client.post(f"{BASE}/goals", json={**later, "achievement": "achieved"}, headers=h)) == ["start"]
    assert client.post(f"{BASE}/goals", json=later, headers=h).status_code == 201  # planned: fine
    assert _fields(client.patch(f"{BASE}/goals/g1", json={"achievement": "sustaining"}, headers=h)) == ["start"]
    moved = client.patch(f"{BASE}/goals/g1", json={"achievement": "achieved", "start": "2025-06-01"}, headers=h)
    assert moved.status_code == 200, moved.text
    assert moved.json()["achievement"] == "achieved"


def test_the_future_tolerance_is_a_setting(app: FastAPI, keys: Keys) -> None:
    app.state.settings = Settings(database_url="sqlite://", future_tolerance_days=5)
    with TestClient(app) as client:
        create(client, keys.cm1, id="a")
        response = client.post(
            f"{BASE}/contacts", json={"date": "2025-07-04", "mode": "phone"}, headers=bearer(keys.cm1)
        )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "s9", "setting": "acute-hospital", "start": "9999-01-01", "status": "in-progress"}, "start"),
        ({"id": "s9", "setting": "acute-hospital", "start": "2025-06-01", "end": "2025-09-01"}, "end"),
        ({"id": "s9", "setting": "skilled-nursing", "start": "2025-03-03", "end": "2025-03-20"}, "start"),
    ],
)
def test_impossible_stays_are_refused(client: TestClient, keys: Keys, body: dict[str, Any], field: str) -> None:
    create(
        client,
        keys.cm1,
        id="a",
        stays=[
            {
                "id": "s1",
                "setting": "acute-hospital",
                "start": "2025-03-01",
                "end": "2025-03-10",
                "discharge_disposition": "snf",
            }
        ],
    )
    assert _fields(client.post(f"{BASE}/stays", json=body, headers=bearer(keys.cm1))) == [field]
    transitions = client.get(f"{BASE}/transitions", headers=bearer(keys.cm1)).json()["derived"]
    assert all(t["from_setting"] != t["to_setting"] for t in transitions)


def test_a_stay_ending_before_it_starts_is_422(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="a")
    body = {"id": "s1", "setting": "acute-hospital", "start": "2025-03-10", "end": "2025-03-01"}
    response = client.post(f"{BASE}/stays", json=body, headers=bearer(keys.cm1))
    assert response.status_code == 422 and "before it starts" in response.text


def test_a_case_created_with_the_future_in_it_is_refused(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/api/v1/cases",
        json={
            "programme": "health-care",
            "start": "2025-01-10",
            "patient": {"kind": "patient", "id": "p1"},
            "contacts": [{"id": "k1", "date": "2026-01-01", "mode": "phone"}],
        },
        headers=bearer(keys.supervisor),
    )
    assert _fields(response) == ["contacts.0.date"]


def test_status_changes_keep_the_period_consistent(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="a")
    h = bearer(keys.cm1)
    closed = client.post(f"{BASE}/close", json={"on": "2025-06-01", "reason": "Goals met"}, headers=h).json()
    assert closed["case"]["period"]["end"] == "2025-06-01"
    reopened = client.post(f"{BASE}/status", json={"status": "referred", "on": "2025-06-10"}, headers=h)
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["case"]["period"].get("end") is None
    fhir = client.get("/fhir/EpisodeOfCare", headers=bearer(keys.service)).json()["entry"][0]["resource"]
    assert "end" not in fhir.get("period", {})
    assert _fields(client.post(f"{BASE}/status", json={"status": "active", "on": "2026-01-01"}, headers=h)) == ["on"]


@pytest.mark.parametrize("value", ["0", "1717200000", "2024-6-1", "yesterday", "2024-06-01T00:00:00"])
def test_a_malformed_date_is_422(client: TestClient, keys: Keys, value: str) -> None:
    h = bearer(keys.supervisor)
    for path, name in (("/api/v1/caseload", "on"), ("/api/v1/outcomes", "from"), ("/api/v1/outcomes", "on")):
        response = client.get(path, params={name: value}, headers=h)
        assert response.status_code == 422, (path, value, response.text)
        assert [(e["location"], e["field"]) for e in response.json()["errors"]] == [("query", name)]


def test_the_caseload_on_a_past_day_is_the_caseload_of_that_day(client: TestClient, keys: Keys) -> None:
    h = bearer(keys.supervisor)
    create(client, keys.supervisor, id="old", start="2024-01-10")
    create(client, keys.supervisor, id="new", start="2025-03-01")  # opened after the day asked about
    for day in ("2024-05-20", "2024-06-10"):  # the second one after the day asked about
        client.post("/api/v1/cases/old/contacts", json={"date": day, "mode": "face-to-face"}, headers=h)
    client.post("/api/v1/cases/old/close", json={"on": "2025-01-05"}, headers=h)  # closed since

    body = client.get("/api/v1/caseload", params={"on": "2024-06-01"}, headers=h).json()
    (cm1,) = body["managers"]
    assert [(c["case_id"], c["status"], c["days_since_face_to_face"]) for c in cm1["cases"]] == [("old", "active", 12)]
    today = client.get("/api/v1/caseload", headers=h).json()
    assert [c["case_id"] for m in today["managers"] for c in m["cases"]] == ["new"]
    assert all(
        c["days_since_face_to_face"] is None or c["days_since_face_to_face"] >= 0
        for m in body["managers"] + today["managers"]
        for c in m["cases"]
    )


def test_outcomes_on_a_past_day_count_only_what_had_happened(client: TestClient, keys: Keys) -> None:
    h = bearer(keys.supervisor)
    stays = [
        {
            "id": "h1",
            "setting": "acute-hospital",
            "start": "2025-02-01",
            "end": "2025-02-05",
            "discharge_disposition": "home",
        },
        {
            "id": "h2",
            "setting": "acute-hospital",
            "start": "2025-02-20",
            "end": "2025-02-22",
            "discharge_disposition": "home",
        },
    ]
    create(client, keys.supervisor, id="a", stays=stays)
    before = client.get("/api/v1/outcomes", params={"on": "2025-02-10"}, headers=h).json()["programmes"][0]
    after = client.get("/api/v1/outcomes", headers=h).json()["programmes"][0]
    assert (before["hospital_discharges"], before["readmissions_30d"]) == (1, 0)
    assert (after["hospital_discharges"], after["readmissions_30d"]) == (2, 1)
