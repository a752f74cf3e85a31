"""Cases: create, read, list with filters, change status with a reason, close, edit, ETags."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from fhir_cm.api import _casework
from fhir_cm.domain import Case
from fhir_cm.store import CaseRecord, StaleRevision, Store, list_outbox

from .conftest import TODAY, Keys, bearer, create, new_case


def test_create_returns_the_case_with_revision_etag_and_location(client: TestClient, keys: Keys) -> None:
    response = client.post("/api/v1/cases", json=new_case(id="case-a"), headers=bearer(keys.cm1))
    assert response.status_code == 201
    body = response.json()
    assert body["case"]["id"] == "case-a"
    assert body["case"]["period"] == {"start": "2025-01-10", "end": None}
    assert body["revision"] == 1
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == "/api/v1/cases/case-a"


def test_create_queues_the_case_for_pushing(client: TestClient, keys: Keys, api_store: Store) -> None:
    create(client, keys.cm1, id="case-a")
    with api_store.session() as s:
        assert [(o.case_id, o.revision) for o in list_outbox(s)] == [("case-a", 1)]


def test_a_case_manager_creating_without_case_manager_becomes_it(client: TestClient, keys: Keys) -> None:
    body = new_case()
    del body["case_manager"]
    response = client.post("/api/v1/cases", json=body, headers=bearer(keys.cm2))
    assert response.status_code == 201
    assert response.json()["case"]["case_manager"]["id"] == "cm-2"


def test_start_defaults_to_today(client: TestClient, keys: Keys) -> None:
    body = new_case()
    del body["start"]
    response = client.post("/api/v1/cases", json=body, headers=bearer(keys.cm1))
    assert response.json()["case"]["period"]["start"] == TODAY.isoformat()


def test_create_with_an_existing_id_is_a_conflict(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    response = client.post("/api/v1/cases", json=new_case(id="case-a"), headers=bearer(keys.cm1))
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


def test_an_id_of_dots_alone_is_refused(client: TestClient, keys: Keys) -> None:
    response = client.post("/api/v1/cases", json=new_case(id=".."), headers=bearer(keys.cm1))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["id"]


def test_a_new_case_must_start_open(client: TestClient, keys: Keys) -> None:
    response = client.post("/api/v1/cases", json=new_case(status="closed"), headers=bearer(keys.cm1))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["status"]


def test_a_control_character_in_text_is_422_naming_the_field(client: TestClient, keys: Keys) -> None:
    response = client.post("/api/v1/cases", json=new_case(plan_summary="bell\x07"), headers=bearer(keys.cm1))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "plan_summary"
    assert "control characters" in error["message"]


def test_create_with_initial_goals_and_needs(client: TestClient, keys: Keys) -> None:
    body = create(
        client,
        keys.cm1,
        needs=[{"id": "n1", "domain": "social", "finding": "lives alone", "recorded": "2025-01-10"}],
        goals=[
            {
                "id": "g1",
                "description": "cook twice a week",
                "self_care": True,
                "due": "2025-03-01",
                "addresses": ["n1"],
            }
        ],
    )
    assert [g["id"] for g in body["case"]["goals"]] == ["g1"]


def test_create_refuses_a_goal_addressing_an_unknown_need(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/api/v1/cases",
        json=new_case(goals=[{"description": "x", "due": "2025-03-01", "addresses": ["nope"]}]),
        headers=bearer(keys.cm1),
    )
    assert response.status_code == 422
    assert "unknown needs" in response.json()["errors"][0]["message"]


def test_read_returns_the_case_and_its_etag(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    response = client.get("/api/v1/cases/case-a", headers=bearer(keys.cm1))
    assert response.status_code == 200
    assert response.json()["case"]["patient"]["id"] == "patient-1"
    assert response.headers["ETag"] == '"1"'


def test_read_of_a_missing_case_is_404_problem(client: TestClient, keys: Keys) -> None:
    response = client.get("/api/v1/cases/nope", headers=bearer(keys.cm1))
    assert response.status_code == 404
    assert response.json()["type"] == "urn:fhir-cm:problem:not-found"


def test_list_filters_by_status_programme_case_manager_and_patient(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="a", patient={"kind": "patient", "id": "p-a"})
    create(
        client, keys.supervisor, id="b", programme="social-work", case_manager={"kind": "practitioner", "id": "cm-2"}
    )
    create(client, keys.supervisor, id="c", status="waitlist")
    client.post("/api/v1/cases/c/close", json={"on": "2025-02-01"}, headers=bearer(keys.supervisor))

    def ids(**params: object) -> list[str]:
        response = client.get("/api/v1/cases", params=params, headers=bearer(keys.supervisor))
        assert response.status_code == 200, response.text
        return [item["case"]["id"] for item in response.json()["items"]]

    assert ids() == ["a", "b", "c"]
    assert ids(status="closed") == ["c"]
    assert ids(status=["active", "closed"]) == ["a", "b", "c"]
    assert ids(open="true") == ["a", "b"]
    assert ids(programme="social-work") == ["b"]
    assert ids(case_manager="cm-2") == ["b"]
    assert ids(patient="p-a") == ["a"]
    assert ids(open="true", status="closed") == []


def test_list_pages_with_limit_and_offset(client: TestClient, keys: Keys) -> None:
    for i in range(5):
        create(client, keys.cm1, id=f"case-{i}")
    first = client.get("/api/v1/cases", params={"limit": 2}, headers=bearer(keys.cm1)).json()
    assert [i["case"]["id"] for i in first["items"]] == ["case-0", "case-1"]
    assert first["next_offset"] == 2
    last = client.get("/api/v1/cases", params={"limit": 2, "offset": 4}, headers=bearer(keys.cm1)).json()
    assert [i["case"]["id"] for i in last["items"]] == ["case-4"]
    assert last["next_offset"] is None


def test_status_change_keeps_the_history_with_the_reason(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    response = client.post(
        "/api/v1/cases/case-a/status",
        json={"status": "on-hold", "on": "2025-03-01", "reason": "in hospital"},
        headers=bearer(keys.cm1),
    )
    assert response.status_code == 200
    case = response.json()["case"]
    assert case["status"] == "on-hold"
    assert [(h["status"], h["start"], h["end"], h["reason"]) for h in case["status_history"]] == [
        ("active", "2025-01-10", "2025-03-01", None),
        ("on-hold", "2025-03-01", None, "in hospital"),
    ]
    assert response.headers["ETag"] == '"2"'


def test_status_change_before_the_current_status_is_422_on_the_day(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    response = client.post(
        "/api/v1/cases/case-a/status", json={"status": "on-hold", "on": "2024-01-01"}, headers=bearer(keys.cm1)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "on"


def test_status_change_to_the_same_status_is_a_conflict(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    response = client.post("/api/v1/cases/case-a/status", json={"status": "active"}, headers=bearer(keys.cm1))
    assert response.status_code == 409


def test_a_case_entered_in_error_stays_so(client: TestClient, keys: Keys) -> None:
    """A case recorded in error (the EpisodeOfCare should never have been in the patient's record) could be
    moved back to active or closed, and the episode came back from ``entered-in-error``, which FHIR ends
    with: it is a 409 naming no move allowed, as a referral's final status is, and nothing changes."""
    create(client, keys.cm1, id="case-a")
    h = bearer(keys.cm1)
    erred = client.post(
        "/api/v1/cases/case-a/status", json={"status": "entered-in-error", "reason": "wrong patient"}, headers=h
    )
    assert erred.status_code == 200, erred.text
    for status in ("active", "closed", "on-hold"):
        refused = client.post("/api/v1/cases/case-a/status", json={"status": status}, headers=h)
        assert refused.status_code == 409, (status, refused.text)
        assert (refused.json()["current"], refused.json()["allowed"]) == ("entered-in-error", [])
    assert client.post("/api/v1/cases/case-a/close", json={}, headers=h).status_code == 409
    case = client.get("/api/v1/cases/case-a", headers=h).json()["case"]
    assert (case["status"], case["status_history"][-1]["status"]) == ("entered-in-error", "entered-in-error")


def test_close_sets_the_period_end_and_the_status(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    response = client.post("/api/v1/cases/case-a/close", json={"reason": "goals met"}, headers=bearer(keys.cm1))
    assert response.status_code == 200
    case = response.json()["case"]
    assert case["status"] == "closed"
    assert case["period"]["end"] == TODAY.isoformat()
    again = client.post("/api/v1/cases/case-a/close", json={}, headers=bearer(keys.cm1))
    assert again.status_code == 409


def test_a_case_with_open_referrals_is_not_closed_or_cancelled(client: TestClient, keys: Keys) -> None:
    """Closing a case left its referrals as they were: the EpisodeOfCare finished and the CarePlan completed
    while the ServiceRequest stayed active and its Task accepted, so the organisation asked went on working
    for a case that had ended. Every referral ends first; the 409 names those still open, and nothing moves."""
    requested = {"id": "r1", "kind": "food", "service": "pantry", "authored": "2025-03-01"}
    done = {"id": "r2", "kind": "housing", "service": "shelter", "authored": "2025-03-01", "status": "completed"}
    create(client, keys.cm1, id="case-a", referrals=[requested, done])
    h = bearer(keys.cm1)
    for path, body in (("close", {"reason": "goals met"}), ("status", {"status": "cancelled"})):
        refused = client.post(f"/api/v1/cases/case-a/{path}", json=body, headers=h)
        assert refused.status_code == 409, refused.text
        assert refused.json()["open_referrals"] == [{"id": "r1", "status": "requested"}]
    assert client.get("/api/v1/cases/case-a", headers=h).json()["case"]["status"] == "active"
    on_hold = client.post("/api/v1/cases/case-a/status", json={"status": "on-hold", "reason": "in hospital"}, headers=h)
    assert on_hold.status_code == 200  # a pause ends nothing

    move = {"status": "cancelled", "reason": "case closing"}
    assert client.post("/api/v1/cases/case-a/referrals/r1/status", json=move, headers=h).status_code == 200
    closed = client.post("/api/v1/cases/case-a/close", json={"reason": "goals met"}, headers=h)
    assert closed.status_code == 200, closed.text
    assert closed.json()["case"]["status"] == "closed"


def test_a_closed_case_takes_no_new_referral(client: TestClient, keys: Keys) -> None:
    """A referral made after the case closed put it back where closing it is refused: an ended case with a
    referral (ServiceRequest active, Task requested) an organisation would work on. Reopened, it takes one."""
    create(client, keys.cm1, id="case-a")
    h = bearer(keys.cm1)
    assert client.post("/api/v1/cases/case-a/close", json={}, headers=h).status_code == 200
    referral = {"id": "r1", "kind": "food", "service": "pantry", "authored": "2025-06-30"}
    refused = client.post("/api/v1/cases/case-a/referrals", json=referral, headers=h)
    assert refused.status_code == 409, refused.text
    assert client.get("/api/v1/cases/case-a/referrals", headers=h).json() == []
    assert client.post("/api/v1/cases/case-a/status", json={"status": "active"}, headers=h).status_code == 200
    assert client.post("/api/v1/cases/case-a/referrals", json=referral, headers=h).status_code == 201


def test_patch_changes_only_the_fields_sent(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a", plan_summary="first plan", acuity="low")
    response = client.patch("/api/v1/cases/case-a", json={"acuity": "high"}, headers=bearer(keys.cm1))
    assert response.status_code == 200
    case = response.json()["case"]
    assert (case["acuity"], case["plan_summary"]) == ("high", "first plan")


def test_only_a_supervisor_reassigns_the_case_manager(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    body = {"case_manager": {"kind": "practitioner", "id": "cm-2"}}
    assert client.patch("/api/v1/cases/case-a", json=body, headers=bearer(keys.cm1)).status_code == 403
    response = client.patch("/api/v1/cases/case-a", json=body, headers=bearer(keys.supervisor))
    assert response.status_code == 200
    assert client.get("/api/v1/cases/case-a", headers=bearer(keys.cm2)).status_code == 200
    assert client.get("/api/v1/cases/case-a", headers=bearer(keys.cm1)).status_code == 404


def test_if_match_with_a_stale_revision_is_412(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    client.patch("/api/v1/cases/case-a", json={"acuity": "high"}, headers=bearer(keys.cm1))
    stale = client.patch(
        "/api/v1/cases/case-a", json={"acuity": "low"}, headers={**bearer(keys.cm1), "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert stale.headers["ETag"] == '"2"'
    fresh = client.patch(
        "/api/v1/cases/case-a", json={"acuity": "low"}, headers={**bearer(keys.cm1), "If-Match": '"2"'}
    )
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == '"3"'


def test_if_match_is_one_list_however_many_lines_carry_it(client: TestClient, keys: Keys) -> None:
    """RFC 9110, 5.3: field lines of one list-based name are one list, in order (not just the first line)."""
    create(client, keys.cm1, id="case-a")
    auth = bearer(keys.cm1)["Authorization"]

    def patch(acuity: str, *tags: str) -> tuple[int, str]:
        headers = [("Authorization", auth), *(("If-Match", tag) for tag in tags)]
        r = client.request("PATCH", "/api/v1/cases/case-a", json={"acuity": acuity}, headers=headers)
        return r.status_code, r.headers["ETag"]

    assert patch("high", '"7"', 'W/"1"') == (200, '"2"')  # the second line names the revision
    assert patch("low", '"1"', '"3"') == (412, '"2"')
    assert patch("low", ' "9", W/"2" ', '"1"') == (200, '"3"')
    assert patch("high", "*") == (200, '"4"')
    assert patch("low", "") == (412, '"4"')  # an empty list names no revision


def test_if_match_star_applies_a_change_that_lost_a_race_again(
    client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``*`` asks only that the case exist: a change overtaken by another is applied to the newer case,
    as without ``If-Match``; a revision named is the client's to reload (412)."""
    create(client, keys.cm1, id="case-a")
    saves: list[str] = []
    save = _casework.save_case_record

    def overtaken_once(session: Any, case: Case, **kwargs: Any) -> CaseRecord:
        saves.append(case.id)
        if len(saves) == 1:
            raise StaleRevision("another request saved the case first")
        return save(session, case, **kwargs)

    monkeypatch.setattr(_casework, "save_case_record", overtaken_once)
    star = client.patch("/api/v1/cases/case-a", json={"acuity": "high"}, headers={**bearer(keys.cm1), "If-Match": "*"})
    assert (star.status_code, star.headers["ETag"], len(saves)) == (200, '"2"', 2)
    saves.clear()
    pinned = {**bearer(keys.cm1), "If-Match": '"2"'}
    assert client.patch("/api/v1/cases/case-a", json={"acuity": "low"}, headers=pinned).status_code == 412


def test_an_unchanged_save_keeps_the_revision(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a", acuity="high")
    response = client.patch("/api/v1/cases/case-a", json={"acuity": "high"}, headers=bearer(keys.cm1))
    assert response.status_code == 200
    assert response.json()["revision"] == 1


def test_a_change_is_kept_decoded_for_the_views_of_the_process_that_saved_it(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """Once committed, the case a change saved is kept in the process's case cache with its row's times:
    the caseload, the worklist and the FHIR façade catching up with the change read no case again (the
    first of them to catch up had read it whole and decoded it), and show it changed."""
    create(client, keys.cm1, id="case-a")
    asks = [
        ("/api/v1/caseload", keys.supervisor),
        ("/api/v1/worklist", keys.cm1),
        ("/fhir/EpisodeOfCare", keys.service),
    ]
    for path, key in asks:
        assert client.get(path, headers=bearer(key)).status_code == 200
    changed = client.patch(
        "/api/v1/cases/case-a",
        json={"case_manager": {"kind": "practitioner", "id": "cm-2"}},
        headers=bearer(keys.supervisor),
    )
    assert changed.status_code == 200, changed.text
    read: list[str] = []
    event.listen(api_store.engine, "before_cursor_execute", lambda _c, _k, statement, *_: read.append(statement))
    answers = [client.get(path, headers=bearer(key)) for path, key in asks]
    assert [a.status_code for a in answers] == [200, 200, 200]
    # Nor is a changed case's revision looked up twice: what each view read it by is what it gets it by.
    assert [s for s in read if "cases.data" in s or "cases.created_at" in s] == []
    managers = {m["case_manager"] for m in answers[0].json()["managers"]}
    assert "cm-2" in managers and "cm-1" not in managers
