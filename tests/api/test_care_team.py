"""The care team as a case manager changes it: who may join when, and what only a hand-over changes."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_cm.domain import Case
from fhir_cm.mapping import case_to_resources

from .conftest import Keys, bearer, create, new_case

BASE = "/api/v1/cases/case-a"
NURSE = {"kind": "practitioner", "id": "nurse-1"}


def _caseload(client: TestClient, key: str) -> list[tuple[str, list[str]]]:
    answer = client.get("/api/v1/caseload", headers=bearer(key)).json()
    return [(m["case_manager"], [c["case_id"] for c in m["cases"]]) for m in answer["managers"]]


def _participants(client: TestClient, key: str) -> list[dict[str, Any]]:
    case = Case.model_validate(client.get(BASE, headers=bearer(key)).json()["case"])
    resources = case_to_resources(case, "R4", "https://example.org/ids")
    team = next(r for r in resources.values() if r["resourceType"] == "CareTeam")
    participants: list[dict[str, Any]] = team["participant"]
    return participants


def test_a_member_added_twice_in_the_same_role_is_a_conflict(client: TestClient, keys: Keys) -> None:
    """A client retrying a POST /team (no id: a fresh one each time) put the same nurse on the team twice
    over the same days, and the CareTeam then listed her as two participants. The second is a 409 naming
    the first; rejoining after leaving, or in another role, is a membership of its own."""
    create(client, keys.cm1, id="case-a")
    h = bearer(keys.cm1)
    first = client.post(f"{BASE}/team", json={"role": "nurse", "party": NURSE, "start": "2025-02-01"}, headers=h)
    assert first.status_code == 201
    again = client.post(f"{BASE}/team", json={"role": "nurse", "party": NURSE}, headers=h)
    assert again.status_code == 409, again.text
    assert again.json()["member"] == first.json()["id"]
    assert len(_participants(client, keys.cm1)) == 1

    other_role = client.post(f"{BASE}/team", json={"role": "therapist", "party": NURSE}, headers=h)
    assert other_role.status_code == 201
    left = client.delete(f"{BASE}/team/{first.json()['id']}", params={"on": "2025-03-31"}, headers=h)
    assert left.status_code == 200
    back = client.post(f"{BASE}/team", json={"role": "nurse", "party": NURSE, "start": "2025-04-01"}, headers=h)
    assert back.status_code == 201
    overlapping = {"role": "nurse", "party": NURSE, "start": "2025-01-01", "end": "2025-02-01"}
    assert client.post(f"{BASE}/team", json=overlapping, headers=h).status_code == 409
    assert len(_participants(client, keys.cm1)) == 3


def test_a_case_manager_cannot_hand_the_case_over_through_the_team(client: TestClient, keys: Keys) -> None:
    """The team's case-manager memberships say who managed the case when, and the caseload reads them: a
    case manager adding a colleague to the team as case manager moved the case to the colleague's caseload
    (out of their own), though only a supervisor hands a case over and the case (and its EpisodeOfCare's
    careManager) still named them; ending their own membership left the case in no one's caseload."""
    create(client, keys.cm1, id="case-a")
    h = bearer(keys.cm1)
    colleague = {"role": "case-manager", "party": {"kind": "practitioner", "id": "cm-2"}}
    moved = client.post(f"{BASE}/team", json=colleague, headers=h)
    assert moved.status_code == 409, moved.text
    assert "PATCH /api/v1/cases/case-a" in moved.json()["detail"]
    assert client.post(f"{BASE}/team", json=colleague, headers=bearer(keys.supervisor)).status_code == 409
    assert _caseload(client, keys.supervisor) == [("cm-1", ["case-a"])]

    own = {"id": "m-own", "role": "case-manager", "party": {"kind": "practitioner", "id": "cm-1"}}
    assert client.post(f"{BASE}/team", json=own, headers=h).status_code == 201
    assert client.delete(f"{BASE}/team/m-own", headers=h).status_code == 409
    assert _caseload(client, keys.supervisor) == [("cm-1", ["case-a"])]

    agency = {"role": "case-manager", "party": {"kind": "organisation", "id": "agency-1"}}
    assert client.post(f"{BASE}/team", json=agency, headers=h).status_code == 201  # no practitioner: no manager
    handed = client.patch(
        BASE, json={"case_manager": {"kind": "practitioner", "id": "cm-2"}}, headers=bearer(keys.supervisor)
    )
    assert handed.status_code == 200
    assert _caseload(client, keys.supervisor) == [("cm-2", ["case-a"])]


def test_a_new_case_names_its_manager_and_each_member_once(client: TestClient, keys: Keys) -> None:
    """The same two rules held for a case created with its team: a case manager creating a case whose team
    named a colleague as case manager put it straight into the colleague's caseload, and a body listing the
    same nurse twice made two CareTeam participants."""
    colleague = {"id": "m-2", "role": "case-manager", "party": {"kind": "practitioner", "id": "cm-2"}}
    handed = client.post("/api/v1/cases", json=new_case(id="case-a", team=[colleague]), headers=bearer(keys.cm1))
    assert handed.status_code == 409, handed.text
    nurse = {"role": "nurse", "party": NURSE, "start": "2025-02-01"}
    twice = client.post("/api/v1/cases", json=new_case(id="case-a", team=[nurse, nurse]), headers=bearer(keys.cm1))
    assert twice.status_code == 409, twice.text
    assert client.get(BASE, headers=bearer(keys.supervisor)).status_code == 404
    own = {"role": "case-manager", "party": {"kind": "practitioner", "id": "cm-1"}, "start": "2025-01-10"}
    create(client, keys.cm1, id="case-a", team=[own, nurse])
    assert _caseload(client, keys.supervisor) == [("cm-1", ["case-a"])]
