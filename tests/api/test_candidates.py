"""``/api/v1/candidates``: the last screening's candidates for supervisors, paged; enrolment into cases."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fhir_cm.config import Settings
from fhir_cm.identify import ScreeningReport, fact_of, load_rules, rank
from fhir_cm.store import Store, list_audit, list_case_records, put_facts
from tests.identify.population import PROFILES, population

from .conftest import TODAY, Keys, bearer, create

SERVER = "https://ehr.example.org/fhir"


def screened(store: Store, prefix: str = "api") -> dict[str, set[str]]:
    """Facts of a seeded population put in the store and ranked; the expected candidates."""
    seeded = list(population(prefix, 2, TODAY))
    rules = load_rules()
    facts = [f for _, _, rs in seeded for r in rs if (f := fact_of(r, rules)) is not None]
    with store.session() as s:
        put_facts(s, SERVER, facts)
    rank(
        store,
        SERVER,
        rules,
        TODAY,
        ScreeningReport(server=SERVER, scope="system", source="search", transaction_time=""),
    )
    return {pid: set(PROFILES[p]) for pid, p, _ in seeded if PROFILES[p]}


def configured(app: object, settings: Settings) -> None:
    app.state.settings = settings.model_copy(update={"fhir_base": SERVER})  # type: ignore[attr-defined]


def test_a_supervisor_pages_through_the_candidates_by_score(
    client: TestClient, app: object, api_store: Store, settings: Settings, keys: Keys
) -> None:
    configured(app, settings)
    expected = screened(api_store)
    seen: dict[str, set[str]] = {}
    scores: list[int] = []
    offset = 0
    while True:
        r = client.get(f"/api/v1/candidates?limit=5&offset={offset}", headers=bearer(keys.supervisor))
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == len(expected)
        if not page["candidates"]:
            break
        for c in page["candidates"]:
            seen[c["patient_id"]] = {x["reason"] for x in c["reasons"]}
            scores.append(c["score"])
        offset += 5
    assert seen == expected
    assert scores == sorted(scores, reverse=True)


def test_only_supervisors_see_candidates(client: TestClient, app: object, settings: Settings, keys: Keys) -> None:
    configured(app, settings)
    assert client.get("/api/v1/candidates", headers=bearer(keys.cm1)).status_code == 403
    assert client.get("/api/v1/candidates", headers=bearer(keys.service)).status_code == 403
    assert client.get("/api/v1/candidates").status_code == 401


def test_without_a_server_the_answer_says_so(client: TestClient, keys: Keys) -> None:
    r = client.get("/api/v1/candidates", headers=bearer(keys.supervisor))
    assert r.status_code == 409 and "no FHIR server" in r.json()["detail"]
    assert r.headers["content-type"] == "application/problem+json"


def test_enrolling_makes_referred_cases_with_their_reasons_once(
    client: TestClient, app: object, api_store: Store, settings: Settings, keys: Keys
) -> None:
    configured(app, settings)
    expected = screened(api_store, "enr")
    chosen = ["enr-high-risk-0", "enr-screen-1", "enr-nothing-0"]
    r = client.post("/api/v1/candidates/enrol", json={"patients": chosen}, headers=bearer(keys.supervisor))
    assert r.status_code == 200, r.text
    body = r.json()
    made = {e["patient_id"]: e for e in body["enrolled"]}
    assert set(made) == {"enr-high-risk-0", "enr-screen-1"}
    assert body["skipped"] == {"enr-nothing-0": "not a candidate of the last screening of this server"}
    for patient_id, e in made.items():
        case = client.get(f"/api/v1/cases/{e['case_id']}", headers=bearer(keys.supervisor)).json()["case"]
        assert case["status"] == "referred" and case["patient"]["id"] == patient_id
        assert set(case["eligibility"]) == expected[patient_id]
    again = client.post(
        "/api/v1/candidates/enrol", json={"patients": chosen[:1], "top": 0}, headers=bearer(keys.supervisor)
    )
    assert again.json() == {"enrolled": [], "skipped": {"enr-high-risk-0": "already in an open case"}}
    top = client.post("/api/v1/candidates/enrol", json={"top": 2}, headers=bearer(keys.supervisor)).json()
    assert len(top["enrolled"]) == 2 and not {e["patient_id"] for e in top["enrolled"]} & set(made)


def test_a_malformed_enrolment_is_refused_with_the_field(
    client: TestClient, app: object, settings: Settings, keys: Keys
) -> None:
    configured(app, settings)
    r = client.post("/api/v1/candidates/enrol", json={"top": -1, "extra": 1}, headers=bearer(keys.supervisor))
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} >= {"top", "extra"}


def test_a_programme_supervisor_enrols_into_that_programme_only(
    client: TestClient, app: object, api_store: Store, settings: Settings, keys: Keys
) -> None:
    """Enrolling makes cases: a supervisor limited to one programme makes them there, as creating one does."""
    configured(app, settings)
    screened(api_store, "scope")
    refused = client.post(
        "/api/v1/candidates/enrol", json={"top": 1, "programme": "social-work"}, headers=bearer(keys.supervisor_hc)
    )
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    with api_store.session() as s:
        assert list_case_records(s) == []
    # Left out, the programme is the key's own: the supervisor sees what they enrolled.
    made = client.post("/api/v1/candidates/enrol", json={"top": 1}, headers=bearer(keys.supervisor_sw)).json()
    [enrolled] = made["enrolled"]
    case = client.get(f"/api/v1/cases/{enrolled['case_id']}", headers=bearer(keys.supervisor_sw))
    assert case.status_code == 200 and case.json()["case"]["programme"] == "social-work"
    # A supervisor of every programme still gets health-care by default.
    anyone = client.post("/api/v1/candidates/enrol", json={"top": 1}, headers=bearer(keys.supervisor)).json()
    [other] = anyone["enrolled"]
    case = client.get(f"/api/v1/cases/{other['case_id']}", headers=bearer(keys.supervisor)).json()["case"]
    assert case["programme"] == "health-care"


def test_each_enrolled_case_is_audited_with_who_enrolled_it(
    client: TestClient, app: object, api_store: Store, settings: Settings, keys: Keys
) -> None:
    configured(app, settings)
    screened(api_store, "aud")
    r = client.post("/api/v1/candidates/enrol", json={"top": 2}, headers=bearer(keys.supervisor))
    made = {e["case_id"] for e in r.json()["enrolled"]}
    assert len(made) == 2
    with api_store.session() as s:
        rows = [e for e in list_audit(s, limit=100) if e.action == "enrol"]
    assert {e.case_id for e in rows} == made
    assert {e.request_id for e in rows} == {r.headers["X-Request-Id"]}
    me = client.get("/api/v1/me", headers=bearer(keys.supervisor)).json()["key_id"]
    assert {e.principal for e in rows} == {me}


def test_a_patient_enrolled_into_the_wrong_programme_and_cancelled_is_enrolled_into_the_right_one_that_day(
    client: TestClient, app: object, api_store: Store, settings: Settings, keys: Keys
) -> None:
    """The case of the first enrolment, cancelled the same day, holds the id that day's enrolment of the
    patient derives: the second enrolment makes a case of its own, in its programme, rather than naming
    the cancelled one (of another programme, out of the second supervisor's sight) as made."""
    configured(app, settings)
    screened(api_store, "move")
    patient = "move-high-risk-0"
    first = client.post("/api/v1/candidates/enrol", json={"patients": [patient]}, headers=bearer(keys.supervisor_hc))
    [wrong] = first.json()["enrolled"]
    cancel = {"status": "cancelled", "reason": "enrolled into the wrong programme"}
    cancelled = client.post(f"/api/v1/cases/{wrong['case_id']}/status", json=cancel, headers=bearer(keys.supervisor_hc))
    assert cancelled.status_code == 200, cancelled.text

    again = client.post("/api/v1/candidates/enrol", json={"patients": [patient]}, headers=bearer(keys.supervisor_sw))
    assert again.status_code == 200, again.text
    [right] = again.json()["enrolled"]
    assert right["case_id"] != wrong["case_id"]
    case = client.get(f"/api/v1/cases/{right['case_id']}", headers=bearer(keys.supervisor_sw))
    assert case.status_code == 200, case.text
    assert (case.json()["case"]["programme"], case.json()["case"]["status"]) == ("social-work", "referred")
    old = client.get(f"/api/v1/cases/{wrong['case_id']}", headers=bearer(keys.supervisor_hc)).json()["case"]
    assert (old["programme"], old["status"]) == ("health-care", "cancelled")
    # Enrolling once more the same day makes nothing more: the patient is in the open case.
    thrice = client.post("/api/v1/candidates/enrol", json={"patients": [patient]}, headers=bearer(keys.supervisor_sw))
    assert thrice.json() == {"enrolled": [], "skipped": {patient: "already in an open case"}}


def test_the_top_candidates_are_those_in_no_open_case_since_the_screening(
    client: TestClient, app: object, api_store: Store, settings: Settings, keys: Keys
) -> None:
    """A patient the screening proposed and who is in an open case since (made by hand in another
    programme, or pulled from the hospital) took a place among the top N, then was skipped: ``top: 1``
    enrolled no one while other candidates waited. The top N are taken among those in no open case."""
    configured(app, settings)
    screened(api_store, "top")
    h = bearer(keys.supervisor)
    best = client.get("/api/v1/candidates", params={"limit": 1}, headers=h).json()["candidates"][0]["patient_id"]
    patient = {"kind": "patient", "id": best}
    create(client, keys.supervisor, id="by-hand", programme="social-work", patient=patient)

    made = client.post("/api/v1/candidates/enrol", json={"top": 1}, headers=bearer(keys.supervisor_hc)).json()
    [enrolled] = made["enrolled"]
    assert enrolled["patient_id"] != best and made["skipped"] == {}
    case = client.get(f"/api/v1/cases/{enrolled['case_id']}", headers=bearer(keys.supervisor_hc))
    assert case.status_code == 200 and case.json()["case"]["programme"] == "health-care"


def test_a_candidate_who_joined_an_open_case_since_the_screening_is_no_longer_offered(
    client: TestClient, app: object, api_store: Store, settings: Settings, keys: Keys
) -> None:
    """Until the next screening the list offered a patient who joined a case since (made by hand,
    enrolled), whose enrolment was then refused; they leave the list, its total and its pages."""
    configured(app, settings)
    expected = screened(api_store, "busy")
    h = bearer(keys.supervisor)
    best, second = (c["patient_id"] for c in client.get("/api/v1/candidates?limit=2", headers=h).json()["candidates"])
    create(client, keys.supervisor, id="by-hand", programme="social-work", patient={"kind": "patient", "id": best})
    enrolled = client.post("/api/v1/candidates/enrol", json={"patients": [second]}, headers=h).json()["enrolled"]
    assert [e["patient_id"] for e in enrolled] == [second]

    page = client.get("/api/v1/candidates?limit=500", headers=h).json()
    offered = {c["patient_id"] for c in page["candidates"]}
    assert offered == set(expected) - {best, second}
    assert page["total"] == len(expected) - 2
    # Its case ended, the patient is offered again.
    cancel = {"status": "cancelled", "reason": "not for us"}
    r = client.post(f"/api/v1/cases/{enrolled[0]['case_id']}/status", json=cancel, headers=bearer(keys.supervisor_hc))
    assert r.status_code == 200, r.text
    again = client.get("/api/v1/candidates?limit=500", headers=h).json()
    assert {c["patient_id"] for c in again["candidates"]} == set(expected) - {best}


def test_each_candidate_says_which_ranking_made_it(
    client: TestClient, app: object, api_store: Store, settings: Settings, keys: Keys
) -> None:
    """The list mixed a Group's candidates with the whole population's, and nothing said which were
    which: each candidate carries ``scope``, ``system`` or ``Group/<id>``."""
    configured(app, settings)
    expected = screened(api_store, "scp")
    clinic = sorted(expected)[:3]
    report = ScreeningReport(
        server=SERVER, scope="Group/north-clinic", source="export", transaction_time="", members=clinic
    )
    rank(api_store, SERVER, load_rules(), TODAY, report)
    r = client.get("/api/v1/candidates?limit=500", headers=bearer(keys.supervisor))
    assert r.status_code == 200, r.text
    scopes = {c["patient_id"]: c["scope"] for c in r.json()["candidates"]}
    assert scopes == {p: "Group/north-clinic" if p in clinic else "system" for p in expected}
