"""Needs, goals, referrals (life cycle), care team (periods), contacts, stays and transitions."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_cm.domain import Case
from fhir_cm.mapping import case_to_resources

from .conftest import TODAY, Keys, bearer, create

BASE = "/api/v1/cases/case-a"


def _setup(client: TestClient, keys: Keys) -> dict[str, str]:
    create(client, keys.cm1, id="case-a")
    return bearer(keys.cm1)


def test_needs_are_recorded_listed_and_resolved(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    need = {"id": "n1", "domain": "financial", "finding": "debts", "recorded": "2025-01-12"}
    assert client.post(f"{BASE}/needs", json=need, headers=h).status_code == 201
    response = client.patch(f"{BASE}/needs/n1", json={"resolved": "2025-04-01", "strengths": ["family"]}, headers=h)
    assert response.status_code == 200
    assert (response.json()["resolved"], response.json()["strengths"]) == ("2025-04-01", ["family"])
    assert [n["id"] for n in client.get(f"{BASE}/needs", headers=h).json()] == ["n1"]


def test_a_need_resolved_before_it_was_recorded_is_422(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    client.post(
        f"{BASE}/needs", json={"id": "n1", "domain": "social", "finding": "x", "recorded": "2025-01-12"}, headers=h
    )
    response = client.patch(f"{BASE}/needs/n1", json={"resolved": "2025-01-01"}, headers=h)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "needs"


def test_goal_progress_and_achievement(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    goal = {"id": "g1", "description": "walk 200 m", "self_care": True, "start": "2025-01-15", "due": "2025-05-01"}
    assert client.post(f"{BASE}/goals", json=goal, headers=h).json()["self_care"] is True
    response = client.patch(f"{BASE}/goals/g1", json={"achievement": "improving"}, headers=h)
    assert response.json()["achievement"] == "improving"
    done = client.patch(f"{BASE}/goals/g1", json={"achievement": "achieved", "status": "completed"}, headers=h)
    assert (done.json()["achievement"], done.json()["status"]) == ("achieved", "completed")
    assert client.get(f"{BASE}/goals", headers=h).json()[0]["status"] == "completed"


def test_a_goal_with_a_used_id_is_a_conflict(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    client.post(f"{BASE}/goals", json={"id": "g1", "description": "a", "due": "2025-05-01"}, headers=h)
    response = client.post(f"{BASE}/goals", json={"id": "g1", "description": "b", "due": "2025-05-01"}, headers=h)
    assert response.status_code == 409


def test_unknown_goal_is_404(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    assert client.patch(f"{BASE}/goals/nope", json={"achievement": "achieved"}, headers=h).status_code == 404


def test_referral_walks_its_life_cycle(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    referral = {"id": "r1", "kind": "home-health", "service": "nursing visits", "authored": "2025-02-01"}
    assert client.post(f"{BASE}/referrals", json=referral, headers=h).json()["status"] == "requested"
    for step in ("accepted", "in-progress", "completed"):
        response = client.post(f"{BASE}/referrals/r1/status", json={"status": step}, headers=h)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == step


def test_an_illegal_referral_move_is_409_with_the_allowed_moves(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    client.post(
        f"{BASE}/referrals", json={"id": "r1", "kind": "food", "service": "x", "authored": "2025-02-01"}, headers=h
    )
    response = client.post(f"{BASE}/referrals/r1/status", json={"status": "completed"}, headers=h)
    assert response.status_code == 409
    body = response.json()
    assert (body["current"], body["allowed"]) == ("requested", ["accepted", "cancelled", "rejected"])
    unchanged = client.get(f"{BASE}/referrals", headers=h).json()
    assert unchanged[0]["status"] == "requested"


def test_a_rejection_needs_a_reason(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    client.post(
        f"{BASE}/referrals", json={"id": "r1", "kind": "food", "service": "x", "authored": "2025-02-01"}, headers=h
    )
    response = client.post(f"{BASE}/referrals/r1/status", json={"status": "rejected"}, headers=h)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "reason"
    ok = client.post(f"{BASE}/referrals/r1/status", json={"status": "rejected", "reason": "no capacity"}, headers=h)
    assert ok.json()["status_reason"] == "no capacity"


def test_a_new_referral_cannot_skip_its_life_cycle(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    body = {"kind": "food", "service": "x", "authored": "2025-02-01", "status": "completed"}
    response = client.post(f"{BASE}/referrals", json=body, headers=h)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "status"


def test_the_supervisor_may_move_a_referral_too(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    client.post(
        f"{BASE}/referrals", json={"id": "r1", "kind": "food", "service": "x", "authored": "2025-02-01"}, headers=h
    )
    response = client.post(
        f"{BASE}/referrals/r1/status", json={"status": "accepted"}, headers=bearer(keys.supervisor_hc)
    )
    assert response.status_code == 200


def test_removing_a_team_member_ends_the_membership(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    member = {"id": "m1", "role": "nurse", "party": {"kind": "practitioner", "id": "nurse-1"}, "start": "2025-01-20"}
    assert client.post(f"{BASE}/team", json=member, headers=h).status_code == 201
    response = client.delete(f"{BASE}/team/m1", params={"on": "2025-04-30"}, headers=h)
    assert response.status_code == 200
    assert response.json()["end"] == "2025-04-30"
    team = client.get(f"{BASE}/team", headers=h).json()
    assert [(m["id"], m["end"]) for m in team] == [("m1", "2025-04-30")]
    assert client.get(f"{BASE}/team", params={"current": "true"}, headers=h).json() == []
    assert client.delete(f"{BASE}/team/m1", headers=h).status_code == 409


def test_a_team_member_starts_today_by_default(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    member = {"id": "m1", "role": "caregiver", "party": {"kind": "related-person", "id": "rp-1"}}
    assert client.post(f"{BASE}/team", json=member, headers=h).json()["start"] == TODAY.isoformat()


def test_leaving_before_joining_is_422(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    member = {"id": "m1", "role": "nurse", "party": {"kind": "practitioner", "id": "n"}, "start": "2025-03-01"}
    client.post(f"{BASE}/team", json=member, headers=h)
    response = client.delete(f"{BASE}/team/m1", params={"on": "2025-02-01"}, headers=h)
    assert response.status_code == 422


def test_contacts_are_recorded_and_listed_in_date_order(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    client.post(f"{BASE}/contacts", json={"id": "c2", "date": "2025-03-01", "mode": "phone"}, headers=h)
    client.post(
        f"{BASE}/contacts", json={"id": "c1", "date": "2025-02-01", "mode": "face-to-face", "note": "ok"}, headers=h
    )
    assert [c["id"] for c in client.get(f"{BASE}/contacts", headers=h).json()] == ["c1", "c2"]


def test_stays_entered_by_hand_give_transitions(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    hospital = {"id": "s1", "setting": "acute-hospital", "status": "in-progress", "start": "2025-03-01"}
    assert client.post(f"{BASE}/stays", json=hospital, headers=h).status_code == 201
    discharge = {"status": "finished", "end": "2025-03-06", "discharge_disposition": "snf"}
    assert client.patch(f"{BASE}/stays/s1", json=discharge, headers=h).status_code == 200
    snf = {
        "id": "s2",
        "setting": "skilled-nursing",
        "start": "2025-03-06",
        "end": "2025-03-20",
        "discharge_disposition": "home",
    }
    client.post(f"{BASE}/stays", json=snf, headers=h)
    body = client.get(f"{BASE}/transitions", headers=h).json()
    assert [(t["from_setting"], t["to_setting"], t["date"]) for t in body["derived"]] == [
        ("acute-hospital", "skilled-nursing", "2025-03-06"),
        ("skilled-nursing", "home", "2025-03-20"),
    ]
    assert body["recorded"] == []
    assert [s["id"] for s in client.get(f"{BASE}/stays", headers=h).json()] == ["s1", "s2"]


def test_a_disposition_on_a_stay_in_progress_is_422(client: TestClient, keys: Keys) -> None:
    h = _setup(client, keys)
    client.post(
        f"{BASE}/stays",
        json={"id": "s1", "setting": "acute-hospital", "status": "in-progress", "start": "2025-03-01"},
        headers=h,
    )
    response = client.patch(f"{BASE}/stays/s1", json={"discharge_disposition": "home"}, headers=h)
    assert response.status_code == 422


def test_a_rule_about_dates_is_named_without_the_dates(client: TestClient, keys: Keys) -> None:
    # Dates of a patient's care are personal data: the answer says which rule, not which days.
    h = _setup(client, keys)
    backwards = {
        "id": "s1",
        "setting": "acute-hospital",
        "status": "finished",
        "start": "2025-03-05",
        "end": "2025-03-01",
    }
    response = client.post(f"{BASE}/stays", json=backwards, headers=h)
    assert response.status_code == 422 and "before it starts" in response.text
    assert "2025-03-05" not in response.text and "2025-03-01" not in response.text


def test_a_value_listed_twice_is_kept_once(client: TestClient, keys: Keys) -> None:
    """An eligibility reason, a strength or an addressed need sent twice was stored twice and repeated in
    the FHIR (two EpisodeOfCare reasons, two Goal.addresses of one Condition). These lists are sets of
    values, not records: a repeat says nothing more, so it is kept once, in the order first given (as
    the façade keeps ``_elements``); a member or an entity id given twice is still refused."""
    h = _setup(client, keys)
    patched = client.patch(BASE, json={"eligibility": ["readmission", "social-needs", "readmission"]}, headers=h)
    assert (patched.status_code, patched.json()["case"]["eligibility"]) == (200, ["readmission", "social-needs"])
    need = {"id": "n1", "domain": "social", "finding": "x", "recorded": "2025-01-12", "strengths": ["kin", "kin"]}
    assert client.post(f"{BASE}/needs", json=need, headers=h).json()["strengths"] == ["kin"]
    again = client.patch(f"{BASE}/needs/n1", json={"strengths": ["faith", "kin", "faith"]}, headers=h)
    assert again.json()["strengths"] == ["faith", "kin"]
    goal = {"id": "g1", "description": "d", "start": "2025-01-15", "addresses": ["n1", "n1"]}
    assert client.post(f"{BASE}/goals", json=goal, headers=h).json()["addresses"] == ["n1"]
    referral = {"id": "r1", "kind": "food", "service": "s", "authored": "2025-06-01", "addresses": ["n1", "n1"]}
    assert client.post(f"{BASE}/referrals", json=referral, headers=h).json()["addresses"] == ["n1"]
    case = Case.model_validate(client.get(BASE, headers=h).json()["case"])
    for version in ("R4", "R5"):
        for resource in case_to_resources(case, version, "https://example.org/ids").values():
            assert not _repeats(resource), (version, resource["resourceType"], _repeats(resource))


def _repeats(value: Any) -> list[Any]:
    """The items some list within ``value`` holds more than once."""
    if isinstance(value, dict):
        return [r for v in value.values() for r in _repeats(v)]
    if isinstance(value, list):
        seen: list[Any] = []
        twice = [item for item in value if item in seen or seen.append(item)]
        return twice + [r for v in value for r in _repeats(v)]
    return []
