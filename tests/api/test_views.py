"""The caseload and outcome views and the audit log, through the API (the figures themselves are
unit-tested in tests/test_caseload.py and tests/test_outcomes.py)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fhir_cm.config import Settings
from fhir_cm.domain import ProgrammeType
from fhir_cm.store import Store, get_case, save_case

from .conftest import Keys, bearer, create


def _contact(client: TestClient, key: str, case_id: str, day: str, mode: str = "face-to-face") -> None:
    response = client.post(f"/api/v1/cases/{case_id}/contacts", json={"date": day, "mode": mode}, headers=bearer(key))
    assert response.status_code == 201


def test_caseload_shows_contact_intensity_per_manager(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="a")
    create(client, keys.supervisor, id="b")
    create(client, keys.supervisor, id="c", case_manager={"kind": "practitioner", "id": "cm-2"})
    _contact(client, keys.supervisor, "a", "2025-06-20")  # 10 days before TODAY
    _contact(client, keys.supervisor, "b", "2025-06-01")  # 29 days
    _contact(client, keys.supervisor, "b", "2025-06-25", mode="phone")  # not face to face: does not count
    body = client.get("/api/v1/caseload", headers=bearer(keys.supervisor)).json()
    assert body["limit"] == 20
    cm1, cm2 = body["managers"]
    assert (cm1["case_manager"], cm1["open_cases"], cm1["over_limit"]) == ("cm-1", 2, False)
    assert [c["days_since_face_to_face"] for c in cm1["cases"]] == [10, 29]
    assert (cm1["average_days_since_face_to_face"], cm1["max_days_since_face_to_face"]) == (19.5, 29)
    assert (cm2["case_manager"], cm2["cases_never_seen"]) == ("cm-2", 1)


def test_caseload_as_of_another_day(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="a")
    _contact(client, keys.supervisor, "a", "2025-06-20")
    body = client.get("/api/v1/caseload", params={"on": "2025-07-20"}, headers=bearer(keys.supervisor)).json()
    assert body["managers"][0]["cases"][0]["days_since_face_to_face"] == 30


def test_caseload_warns_above_the_configured_limit(app, keys: Keys) -> None:  # type: ignore[no-untyped-def]
    app.state.settings = Settings(database_url="sqlite://", caseload_limit=2)
    with TestClient(app) as client:
        for i in range(3):
            create(client, keys.cm1, id=f"case-{i}")
        body = client.get("/api/v1/caseload", headers=bearer(keys.cm1)).json()
    assert (body["managers"][0]["open_cases"], body["managers"][0]["over_limit"]) == (3, True)


def test_a_case_manager_sees_only_their_own_caseload(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="a")
    create(
        client,
        keys.supervisor,
        id="b",
        case_manager={"kind": "practitioner", "id": "cm-2"},
        team=[{"id": "m1", "role": "nurse", "party": {"kind": "practitioner", "id": "cm-1"}}],
    )
    body = client.get("/api/v1/caseload", headers=bearer(keys.cm1)).json()
    assert [(m["case_manager"], m["open_cases"]) for m in body["managers"]] == [("cm-1", 1)]


def test_a_case_handed_over_moves_to_the_new_managers_caseload_from_that_day(client: TestClient, keys: Keys) -> None:
    """The team records who managed the case when (as an import or a pull brings it); a supervisor hands the
    case to cm-2. The caseload kept reading cm-1's open membership: the case stayed in cm-1's caseload (and
    cm-1 kept seeing it), never reaching cm-2's. From the handover day it is cm-2's, and the days before stay
    cm-1's."""
    manager = {"id": "m-1", "role": "case-manager", "party": {"kind": "practitioner", "id": "cm-1"}}
    create(client, keys.supervisor, id="a", team=[{**manager, "start": "2025-01-10"}])
    body = {"case_manager": {"kind": "practitioner", "id": "cm-2"}}
    assert client.patch("/api/v1/cases/a", json=body, headers=bearer(keys.supervisor)).status_code == 200

    def caseload(key: str, **params: str) -> list[tuple[str, list[str]]]:
        answer = client.get("/api/v1/caseload", params=params, headers=bearer(key)).json()
        return [(m["case_manager"], [c["case_id"] for c in m["cases"]]) for m in answer["managers"]]

    assert caseload(keys.supervisor) == [("cm-2", ["a"])]  # TODAY, the handover day
    assert caseload(keys.cm2) == [("cm-2", ["a"])]
    assert caseload(keys.cm1, on="2025-07-01") == []
    assert caseload(keys.cm1, on="2025-06-29") == []  # cm-1's then, but cm-1 no longer sees the case
    assert caseload(keys.supervisor, on="2025-06-29") == [("cm-1", ["a"])]
    team = client.get("/api/v1/cases/a/team", headers=bearer(keys.supervisor)).json()
    assert [(m["party"]["id"], m["role"], m["start"], m["end"]) for m in team] == [
        ("cm-1", "case-manager", "2025-01-10", "2025-06-29"),  # its last day on the team
        ("cm-2", "case-manager", "2025-06-30", None),
    ]
    assert client.get("/api/v1/cases/a", headers=bearer(keys.cm1)).status_code == 404
    assert client.patch("/api/v1/cases/a", json=body, headers=bearer(keys.supervisor)).status_code == 200
    assert len(client.get("/api/v1/cases/a/team", headers=bearer(keys.supervisor)).json()) == 2  # no change


def test_an_organisation_in_the_case_manager_role_is_no_case_manager(client: TestClient, keys: Keys) -> None:
    """A care team may name an organisation (a case-management agency) in the case-manager role, as a CareTeam
    pulled from a hospital does. The caseload and the outcomes took it for the case manager of the day and
    failed (500) building a case whose case manager is no practitioner; the case manager stays the case's own."""
    agency = {"id": "m-1", "role": "case-manager", "party": {"kind": "organisation", "id": "agency-1"}}
    create(client, keys.supervisor, id="a", team=[{**agency, "start": "2025-01-10"}])
    for on in ("2025-06-30", "2025-03-01"):
        answer = client.get("/api/v1/caseload", params={"on": on}, headers=bearer(keys.supervisor))
        assert answer.status_code == 200, answer.text
        assert [(m["case_manager"], m["open_cases"]) for m in answer.json()["managers"]] == [("cm-1", 1)]
        assert client.get("/api/v1/outcomes", params={"on": on}, headers=bearer(keys.supervisor)).status_code == 200


def test_closed_cases_leave_the_caseload(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="a")
    client.post("/api/v1/cases/a/close", json={}, headers=bearer(keys.cm1))
    assert client.get("/api/v1/caseload", headers=bearer(keys.cm1)).json()["managers"] == []


def test_a_case_closed_on_a_day_ahead_stays_in_todays_caseload(client: TestClient, keys: Keys) -> None:
    """A case manager a time zone ahead closes a case on their today, the server's tomorrow (the tolerance
    of future days takes it). The case is open until then, and the caseload of the day before showed it;
    today's left it out, read off the stored status (closed) instead of the case as it stands today."""
    create(client, keys.cm1, id="a")
    closed = client.post("/api/v1/cases/a/close", json={"on": "2025-07-01"}, headers=bearer(keys.cm1))
    assert closed.status_code == 200, closed.text

    def caseload(**params: str) -> list[tuple[str, list[str]]]:
        answer = client.get("/api/v1/caseload", params=params, headers=bearer(keys.supervisor)).json()
        return [(m["case_manager"], [c["case_id"] for c in m["cases"]]) for m in answer["managers"]]

    assert caseload(on="2025-06-29") == [("cm-1", ["a"])]
    assert caseload() == [("cm-1", ["a"])]  # TODAY, 2025-06-30: still open
    assert caseload(on="2025-07-01") == []  # closed that day


def test_outcomes_per_programme_and_period(client: TestClient, keys: Keys) -> None:
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
    create(client, keys.supervisor, id="a", stays=stays, contacts=[{"id": "c1", "date": "2025-02-08", "mode": "phone"}])
    create(client, keys.supervisor, id="b", programme="rehabilitation")
    params = {"programme": "health-care", "from": "2025-02-01", "to": "2025-02-10"}
    body = client.get("/api/v1/outcomes", params=params, headers=bearer(keys.supervisor)).json()
    (hc,) = body["programmes"]
    assert (hc["programme"], hc["hospital_discharges"], hc["readmissions_30d"], hc["readmission_rate"]) == (
        "health-care",
        1,
        1,
        1.0,
    )
    assert hc["median_days_to_follow_up"] == 3.0
    assert hc["length_of_stay"] == [{"setting": "acute-hospital", "stays": 1, "mean_days": 4.0, "median_days": 4.0}]
    everything = client.get("/api/v1/outcomes", headers=bearer(keys.supervisor)).json()
    assert [p["programme"] for p in everything["programmes"]] == ["health-care", "rehabilitation"]


def test_outcomes_of_a_programme_a_supervisor_key_is_not_limited_to_are_refused(client: TestClient, keys: Keys) -> None:
    """A health-care supervisor asking for social-work's figures got them all zero (no case, no discharge,
    rates none), as if the programme had nothing to measure, while it has cases this key may not see."""
    create(client, keys.supervisor, id="a", programme="social-work")
    asked = client.get("/api/v1/outcomes", params={"programme": "social-work"}, headers=bearer(keys.supervisor_hc))
    assert asked.status_code == 403, asked.text
    assert "limited to programme 'health-care'" in asked.json()["detail"]
    mine = client.get("/api/v1/outcomes", params={"programme": "health-care"}, headers=bearer(keys.supervisor_hc))
    assert mine.json()["programmes"][0]["cases"] == 0  # its own programme, which has no case yet
    assert client.get("/api/v1/outcomes", headers=bearer(keys.supervisor_hc)).json()["programmes"] == []


def test_outcomes_refuse_a_period_ending_before_it_starts(client: TestClient, keys: Keys) -> None:
    response = client.get(
        "/api/v1/outcomes", params={"from": "2025-03-01", "to": "2025-02-01"}, headers=bearer(keys.supervisor)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "to"


def test_the_audit_log_records_who_read_and_changed_which_case(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="a")
    client.get("/api/v1/cases/a", headers={**bearer(keys.cm1), "X-Request-Id": "r-1"})
    client.patch("/api/v1/cases/a", json={"acuity": "high"}, headers=bearer(keys.cm1))
    entries = client.get("/api/v1/audit", params={"case_id": "a"}, headers=bearer(keys.supervisor)).json()
    assert [(e["action"], e["case_id"]) for e in entries] == [("update", "a"), ("read", "a"), ("create", "a")]
    assert len({e["principal"] for e in entries}) == 1
    assert entries[1]["request_id"] == "r-1"
    assert entries[0]["detail"] == "fields:acuity"


def test_the_audit_log_says_where_a_referral_was_moved_and_what_a_patch_changed(client: TestClient, keys: Keys) -> None:
    """The case keeps only a referral's status now: who cancelled it (rather than completed it) is the audit's
    to say, and its rows read ``referrals:r1`` for every move alike, and ``goals:g1`` for any change of a goal.
    A move names the status, a PATCH the fields sent, as a case's own PATCH does."""
    referral = {"id": "r1", "kind": "food", "service": "pantry", "authored": "2025-03-01"}
    goal = {"id": "g1", "description": "cook twice a week", "start": "2025-03-01"}
    create(client, keys.cm1, id="a", referrals=[referral], goals=[goal])
    h = bearer(keys.cm1)
    client.post("/api/v1/cases/a/referrals/r1/status", json={"status": "cancelled", "reason": "moved away"}, headers=h)
    client.patch("/api/v1/cases/a/goals/g1", json={"status": "completed", "achievement": "achieved"}, headers=h)
    entries = client.get("/api/v1/audit", params={"case_id": "a"}, headers=bearer(keys.supervisor)).json()
    changes = [(e["action"], e["detail"]) for e in entries if e["action"] not in ("read", "create")]
    assert changes == [("update", "goals:g1:fields:achievement,status"), ("status", "referrals:r1:cancelled")]


def test_a_programme_supervisor_sees_the_audit_of_that_programme(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="hc")
    create(client, keys.supervisor, id="sw", programme="social-work")
    entries = client.get("/api/v1/audit", headers=bearer(keys.supervisor_hc)).json()
    assert {e["case_id"] for e in entries} == {"hc"}


def _acute(stay_id: str, start: str, end: str) -> dict[str, str]:
    return {"id": stay_id, "setting": "acute-hospital", "start": start, "end": end, "discharge_disposition": "home"}


def test_outcomes_count_a_readmission_into_a_later_case_of_the_same_patient(client: TestClient, keys: Keys) -> None:
    """Discharged at the end of one case and admitted again 15 days later into the patient's next case
    (another programme's), the readmission went uncounted: each case looked only at its own stays."""
    create(client, keys.supervisor, id="a", start="2025-01-10", stays=[_acute("h1", "2025-02-01", "2025-02-05")])
    closed = client.post("/api/v1/cases/a/close", json={"on": "2025-02-10"}, headers=bearer(keys.supervisor))
    assert closed.status_code == 200, closed.text
    create(client, keys.supervisor, id="b", start="2025-03-01", programme="rehabilitation",
           stays=[_acute("h2", "2025-02-20", "2025-02-22")])  # fmt: skip
    create(client, keys.supervisor, id="c", start="2025-01-10", patient={"kind": "patient", "id": "patient-2"},
           stays=[_acute("h3", "2025-02-03", "2025-02-04")])  # fmt: skip

    def health_care(**params: str) -> tuple[int, int]:
        params |= {"programme": "health-care", "from": "2025-02-01", "to": "2025-02-10"}
        (hc,) = client.get("/api/v1/outcomes", params=params, headers=bearer(keys.supervisor)).json()["programmes"]
        return hc["hospital_discharges"], hc["readmissions_30d"]

    assert health_care() == (2, 1)  # a's discharge readmitted in b; patient-2 was admitted once only
    assert health_care(on="2025-02-28") == (2, 0)  # b had not begun: nobody could know of it then
    rehabilitation = client.get(
        "/api/v1/outcomes", params={"programme": "rehabilitation"}, headers=bearer(keys.supervisor)
    )
    assert rehabilitation.json()["programmes"][0]["readmissions_30d"] == 0  # attributed to a's programme only


def test_outcomes_count_a_readmission_once_when_its_case_holds_it_and_another_case_too(
    client: TestClient, keys: Keys
) -> None:
    """The readmission within the case is not counted again for a later case holding the same stays."""
    create(client, keys.supervisor, id="a", start="2025-01-10",
           stays=[_acute("h1", "2025-02-01", "2025-02-05"), _acute("h2", "2025-02-20", "2025-02-22")])  # fmt: skip
    create(client, keys.supervisor, id="b", start="2025-03-01", programme="rehabilitation",
           stays=[_acute("h2-copy", "2025-02-20", "2025-02-22"), _acute("h4", "2025-02-25", "2025-02-26")])  # fmt: skip
    params = {"programme": "health-care", "from": "2025-02-01", "to": "2025-02-10"}
    (hc,) = client.get("/api/v1/outcomes", params=params, headers=bearer(keys.supervisor)).json()["programmes"]
    assert (hc["hospital_discharges"], hc["readmissions_30d"], hc["readmission_rate"]) == (1, 1, 1.0)


def test_a_programme_supervisor_pages_through_the_audit_of_that_programme(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """The log was paged first and filtered by programme after: entries of a busy other programme (or
    of a case moved there since) left a page of a supervisor limited to one programme short or empty
    while that programme's entries went on further back. The page is of the programme's entries."""
    create(client, keys.supervisor, id="hc")
    client.get("/api/v1/cases/hc", headers=bearer(keys.supervisor))
    create(client, keys.supervisor, id="moved")
    with api_store.session() as s:  # the hospital moved it to social work, a pull brought that in
        moved = get_case(s, "moved")
        assert moved is not None
        save_case(s, moved.model_copy(update={"programme": ProgrammeType.SOCIAL_WORK}))
    for _ in range(3):
        client.get("/api/v1/cases/moved", headers=bearer(keys.supervisor_sw))
    h = bearer(keys.supervisor_hc)
    mine = client.get("/api/v1/audit", headers=h).json()
    assert [(e["case_id"], e["action"]) for e in mine] == [("hc", "read"), ("hc", "create")]
    first = client.get("/api/v1/audit", params={"limit": 1}, headers=h).json()
    second = client.get("/api/v1/audit", params={"limit": 1, "offset": 1}, headers=h).json()
    assert first + second == mine


def test_a_case_moved_to_another_programme_is_that_programme_s_in_every_view(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """The hospital moves a case (a pull saves its new programme): the old programme's supervisor no
    longer reads, lists or counts it; the new one's does, in the kept caseload and outcomes too."""
    stay = {"id": "h1", "setting": "acute-hospital", "start": "2025-02-01", "end": "2025-02-05"}
    create(client, keys.supervisor, id="moving", stays=[stay | {"discharge_disposition": "home"}])
    hc, sw = bearer(keys.supervisor_hc), bearer(keys.supervisor_sw)
    period = {"from": "2025-01-01", "to": "2025-06-30"}

    def seen(h: dict[str, str]) -> tuple[int, list[str], list[str], list[tuple[str, int]]]:
        read = client.get("/api/v1/cases/moving", headers=h).status_code
        listed = [c["case"]["id"] for c in client.get("/api/v1/cases", headers=h).json()["items"]]
        managed = [
            c["case_id"] for m in client.get("/api/v1/caseload", headers=h).json()["managers"] for c in m["cases"]
        ]
        figures = client.get("/api/v1/outcomes", params=period, headers=h).json()["programmes"]
        return read, listed, managed, [(p["programme"], p["hospital_discharges"]) for p in figures]

    assert seen(hc) == (200, ["moving"], ["moving"], [("health-care", 1)])
    assert seen(sw) == (404, [], [], [])
    with api_store.session() as s:
        case = get_case(s, "moving")
        assert case is not None
        save_case(s, case.model_copy(update={"programme": ProgrammeType.SOCIAL_WORK}))
    assert seen(hc) == (404, [], [], [])
    assert seen(sw) == (200, ["moving"], ["moving"], [("social-work", 1)])
