"""CDS Hooks: signed JWTs checked on every call, discovery, the three cards, feedback making the case."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from fhir.resources.R4B.servicerequest import ServiceRequest

from fhir_cm.domain import (
    CareSetting,
    Case,
    CaseStatus,
    DischargeDisposition,
    Party,
    PartyKind,
    Period,
    ProgrammeType,
    Referral,
    ReferralKind,
    ReferralStatus,
    Stay,
)
from fhir_cm.store import Store, get_case, list_audit, list_cases, list_feedback, save_case
from tests.identify.population import condition, encounter, patient, screen

from .conftest import BASE, ISSUER, TODAY, Signer

PV = "/cds-services/fhir-cm-patient-view"
DISCHARGE = "/cds-services/fhir-cm-encounter-discharge"


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def call(patient_id: str, hook: str = "patient-view", **prefetch: Any) -> dict[str, Any]:
    return {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/doc-1", "patientId": patient_id, "encounterId": "enc-9"},
        "prefetch": prefetch,
    }


def eligible_prefetch(pid: str) -> dict[str, Any]:
    days = lambda n: TODAY - dt.timedelta(days=n)  # noqa: E731
    return {
        "patient": patient(pid),
        "encounters": bundle(encounter(pid, "IMP", days(100), 4), encounter(pid, "IMP", days(20), 3)),
        "conditions": bundle(condition(pid, "C34.90")),
        "screens": bundle(),
    }


def open_case(store: Store, pid: str) -> Case:
    discharged = TODAY - dt.timedelta(days=3)
    case = Case(
        id="case-open-1",
        programme=ProgrammeType.HEALTH_CARE,
        status=CaseStatus.ACTIVE,
        period=Period(start=TODAY - dt.timedelta(days=60)),
        patient=Party(kind=PartyKind.PATIENT, id=pid),
        case_manager=Party(kind=PartyKind.PRACTITIONER, id="cm-7", name="Dana Reed"),
        stays=[
            Stay(
                id="stay-1",
                setting=CareSetting.ACUTE_HOSPITAL,
                start=discharged - dt.timedelta(days=5),
                end=discharged,
                discharge_disposition=DischargeDisposition.HOME,
            )
        ],
        referrals=[
            Referral(
                id="fu-1",
                kind=ReferralKind.FOLLOW_UP,
                status=ReferralStatus.REQUESTED,
                service="Follow-up after discharge",
                authored=discharged,
                due=discharged + dt.timedelta(days=7),
                for_stay="stay-1",
            )
        ],
    )
    with store.session() as s:
        save_case(s, case)
    return case


def assert_card_shape(card: dict[str, Any]) -> None:
    """The spec's required card fields (CDS Hooks 2.0, Card attributes)."""
    assert set(card) >= {"uuid", "summary", "indicator", "source"}
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"]
    if card.get("suggestions"):
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for s in card["suggestions"]:
            assert s["label"] and s["uuid"] and all(a["type"] in ("create", "update", "delete") for a in s["actions"])
    for link in card.get("links") or ():
        assert link["label"] and link["url"].startswith("http") and link["type"] in ("absolute", "smart")


# --- who may call ---------------------------------------------------------------------------------


def test_discovery_lists_the_services_with_their_prefetch(cds_client: TestClient, signer: Signer) -> None:
    r = cds_client.get("/cds-services", headers=signer.headers("/cds-services"))
    assert r.status_code == 200, r.text
    services = {s["id"]: s for s in r.json()["services"]}
    assert services["fhir-cm-patient-view"]["hook"] == "patient-view"
    assert services["fhir-cm-encounter-discharge"]["hook"] == "encounter-discharge"
    for s in services.values():
        assert s["title"] and s["description"] and s["prefetch"]["patient"] == "Patient/{{context.patientId}}"


def test_an_ec_signed_token_is_accepted_too(cds_client: TestClient, signer: Signer) -> None:
    assert cds_client.get("/cds-services", headers=signer.headers("/cds-services", alg="ES384")).status_code == 200


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("missing", "a bearer JWT"),
        ("expired", "expired"),
        ("wrong audience", "addressed to another service"),
        ("unknown issuer", "not allow-listed"),
        ("bad signature", "signature does not verify"),
        ("no jti", "lacks the jti claim"),
        ("shared secret", "asymmetric"),
        ("EC algorithm, RSA key", "does not fit its key"),
        ("RSA algorithm, EC key", "does not fit its key"),
        ("an hour to live", "longer than the 5 minutes"),
        ("empty jti", "jti is empty"),
    ],
)
def test_a_bad_token_is_refused_and_nothing_is_recorded(
    cds_client: TestClient, cds_store: Store, signer: Signer, case: str, says: str
) -> None:
    aud = BASE + PV
    now = int(time.time())
    headers = {
        "missing": {},
        "expired": {"Authorization": f"Bearer {signer.token(aud, exp=now - 120, iat=now - 420)}"},
        "wrong audience": {"Authorization": f"Bearer {signer.token('https://elsewhere.example/cds-services/x')}"},
        "unknown issuer": {"Authorization": f"Bearer {signer.token(aud, iss='https://evil.example')}"},
        "bad signature": {
            "Authorization": "Bearer "
            + signer.token(aud, key=rsa.generate_private_key(public_exponent=65537, key_size=2048), kid="rsa-1")
        },
        "no jti": {"Authorization": f"Bearer {signer.token(aud, jti=None)}"},
        "shared secret": {"Authorization": f"Bearer {signer.token(aud, alg='HS256', key='s' * 32, kid='rsa-1')}"},
        # Signed with a key of the header's family, naming the issuer's key of the other (kids are public).
        "EC algorithm, RSA key": {"Authorization": f"Bearer {signer.token(aud, alg='ES384', kid='rsa-1')}"},
        "RSA algorithm, EC key": {"Authorization": f"Bearer {signer.token(aud, alg='RS384', kid='ec-1')}"},
        "an hour to live": {"Authorization": f"Bearer {signer.token(aud, exp=now + 3600)}"},
        "empty jti": {"Authorization": f"Bearer {signer.token(aud, jti='')}"},
    }[case]
    r = cds_client.post(PV, json=call("p-elig", **eligible_prefetch("p-elig")), headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json" and says in r.json()["detail"]
    fb = cds_client.post(f"{PV}/feedback", json={"feedback": []}, headers=headers)
    assert fb.status_code == 401  # refused before the (here invalid) body is even looked at
    with cds_store.session(read_only=True) as s:
        assert list_feedback(s) == [] and list_cases(s) == []


def test_a_replayed_token_is_refused(cds_client: TestClient, signer: Signer) -> None:
    headers = signer.headers("/cds-services")
    assert cds_client.get("/cds-services", headers=headers).status_code == 200
    again = cds_client.get("/cds-services", headers=headers)
    assert again.status_code == 401 and "already used" in again.json()["detail"]


# --- patient-view ---------------------------------------------------------------------------------


def test_an_eligible_patient_gets_the_reasons_and_a_referral_to_accept(
    cds_client: TestClient, cds_store: Store, signer: Signer
) -> None:
    r = cds_client.post(PV, json=call("p-elig", **eligible_prefetch("p-elig")), headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert_card_shape(card)
    assert card["summary"].startswith("Eligible for case management")
    assert "2 inpatient admissions in 365 days" in card["detail"] and "high-risk condition" in card["detail"]
    [suggestion] = card["suggestions"]
    [action] = suggestion["actions"]
    referral = ServiceRequest.model_validate(action["resource"])  # a valid R4 ServiceRequest
    assert referral.subject.reference == "Patient/p-elig" and referral.intent == "order"

    # The clinician accepts: the referred case is made, once.
    entry = {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": suggestion["uuid"]}],
        "outcomeTimestamp": "2026-06-01T10:00:00Z",
    }
    fb = cds_client.post(f"{PV}/feedback", json={"feedback": [entry]}, headers=signer.headers(f"{PV}/feedback"))
    assert fb.status_code == 200, fb.text
    [case_id] = fb.json()["cases"]
    again = cds_client.post(f"{PV}/feedback", json={"feedback": [entry]}, headers=signer.headers(f"{PV}/feedback"))
    assert again.json()["cases"] == [case_id]
    with cds_store.session(read_only=True) as s:
        case = get_case(s, case_id)
        assert case is not None and case.status is CaseStatus.REFERRED and case.patient.id == "p-elig"
        assert {e.value for e in case.eligibility} == {"frequent-admissions", "complex-condition"}
        assert [f.outcome for f in list_feedback(s)] == ["accepted", "accepted"]
        assert len(list_cases(s, patient="p-elig")) == 1
        # The case made is audited once, naming the EHR whose token was verified (it has no API key).
        [made] = list_audit(s, case_id=case_id)
        assert (made.principal, made.action) == ("cds-hooks", "cds-referral")
        assert made.detail == f"issuer {ISSUER}; service fhir-cm-patient-view" and made.request_id


def _eligibility_card(cds_client: TestClient, signer: Signer, pid: str) -> dict[str, Any]:
    """The card patient-view answers for an eligible patient ``pid``."""
    r = cds_client.post(PV, json=call(pid, **eligible_prefetch(pid)), headers=signer.headers(PV))
    card: dict[str, Any] = r.json()["cards"][0]
    return card


def _feedback(card: str, outcome: str = "overridden", **more: Any) -> dict[str, Any]:
    return {"card": card, "outcome": outcome, "outcomeTimestamp": "2026-06-01T10:00:00Z", **more}


def test_an_overridden_card_is_recorded_with_the_reason(
    cds_client: TestClient, cds_store: Store, signer: Signer
) -> None:
    card = _eligibility_card(cds_client, signer, "p-2")
    reason = {"reason": {"code": "already-managed", "display": "Managed elsewhere"}, "userComment": "x"}
    entry = _feedback(card["uuid"], overrideReason=reason)
    fb = cds_client.post(f"{PV}/feedback", json={"feedback": [entry]}, headers=signer.headers(f"{PV}/feedback"))
    assert fb.status_code == 200 and fb.json()["cases"] == [None]
    with cds_store.session(read_only=True) as s:
        [recorded] = list_feedback(s)
        assert recorded.outcome == "overridden" and recorded.override_reason["reason"]["code"] == "already-managed"
        assert list_cases(s) == []


def test_feedback_naming_a_card_never_issued_is_refused_and_none_of_it_recorded(
    cds_client: TestClient, cds_store: Store, signer: Signer
) -> None:
    card = _eligibility_card(cds_client, signer, "p-3")
    accepted = _feedback(card["uuid"], "accepted", acceptedSuggestions=[{"id": card["suggestions"][0]["uuid"]}])
    never = _feedback("4e0a3a1e-3283-4575-ab82-028d55fe2719")
    fb = cds_client.post(
        f"{PV}/feedback", json={"feedback": [accepted, never, never]}, headers=signer.headers(f"{PV}/feedback")
    )
    assert fb.status_code == 422, fb.text
    assert fb.headers["content-type"] == "application/problem+json"
    assert [(e["field"], e["location"]) for e in fb.json()["errors"]] == [
        ("feedback.1.card", "body"),
        ("feedback.2.card", "body"),
    ]
    assert "never issued" in fb.json()["detail"]
    with cds_store.session(read_only=True) as s:
        assert list_feedback(s) == [] and list_cases(s) == []  # not even the known card's, nor its case
    # A card another service issued is not this service's to take feedback on.
    elsewhere = cds_client.post(
        f"{DISCHARGE}/feedback", json={"feedback": [accepted]}, headers=signer.headers(f"{DISCHARGE}/feedback")
    )
    assert elsewhere.status_code == 422 and elsewhere.json()["errors"][0]["field"] == "feedback.0.card"
    with cds_store.session(read_only=True) as s:
        assert list_feedback(s) == [] and list_cases(s) == []


def test_accepting_a_suggestion_the_card_never_made_is_refused_and_makes_no_case(
    cds_client: TestClient, cds_store: Store, signer: Signer
) -> None:
    card = _eligibility_card(cds_client, signer, "p-4")
    made_up = _feedback(card["uuid"], "accepted", acceptedSuggestions=[{"id": "8d3f8f6e-0000-4000-8000-000000000000"}])
    open_case(cds_store, "p-open")
    opened = cds_client.post(PV, json=call("p-open"), headers=signer.headers(PV)).json()["cards"][0]
    on_a_card_without = _feedback(
        opened["uuid"], "accepted", acceptedSuggestions=[{"id": card["suggestions"][0]["uuid"]}]
    )

    fb = cds_client.post(
        f"{PV}/feedback", json={"feedback": [made_up, on_a_card_without]}, headers=signer.headers(f"{PV}/feedback")
    )

    assert fb.status_code == 422, fb.text
    assert [e["field"] for e in fb.json()["errors"]] == [
        "feedback.0.acceptedSuggestions",
        "feedback.1.acceptedSuggestions",
    ]
    with cds_store.session(read_only=True) as s:
        assert list_feedback(s) == [] and [c.patient.id for c in list_cases(s)] == ["p-open"]


def test_the_token_is_checked_before_the_cards_feedback_names(cds_client: TestClient, cds_store: Store) -> None:
    fb = cds_client.post(f"{PV}/feedback", json={"feedback": [_feedback("never-issued")]})
    assert fb.status_code == 401, fb.text
    with cds_store.session(read_only=True) as s:
        assert list_feedback(s) == []


def test_every_card_issued_takes_feedback(cds_client: TestClient, cds_store: Store, signer: Signer) -> None:
    open_case(cds_store, "p-open")
    cards = cds_client.post(PV, json=call("p-open"), headers=signer.headers(PV)).json()["cards"]
    plan = cds_client.post(
        DISCHARGE, json=call("p-open", "encounter-discharge"), headers=signer.headers(DISCHARGE)
    ).json()["cards"]
    assert len(cards) == 2 and len(plan) == 1  # the open case and the plan; the plan at discharge
    for path, issued in ((PV, cards), (DISCHARGE, plan)):
        entries = [_feedback(c["uuid"]) for c in issued]
        fb = cds_client.post(f"{path}/feedback", json={"feedback": entries}, headers=signer.headers(f"{path}/feedback"))
        assert fb.status_code == 200 and fb.json()["cases"] == [None] * len(entries), fb.text
    with cds_store.session(read_only=True) as s:
        assert [f.card_uuid for f in list_feedback(s)] == [c["uuid"] for c in [*cards, *plan]]


@pytest.mark.parametrize("at", ["2026-06-01T10:00:00", "2026-06-01", "0001-01-01T00:00:00+05:00"])
def test_feedback_at_no_instant_is_refused(cds_client: TestClient, cds_store: Store, signer: Signer, at: str) -> None:
    entry = {"card": "c-1", "outcome": "overridden", "outcomeTimestamp": at}
    fb = cds_client.post(f"{PV}/feedback", json={"feedback": [entry]}, headers=signer.headers(f"{PV}/feedback"))
    assert fb.status_code == 422, fb.text
    assert fb.headers["content-type"] == "application/problem+json" and "outcomeTimestamp" in fb.text
    with cds_store.session(read_only=True) as s:
        assert list_feedback(s) == []


def test_a_patient_not_eligible_gets_no_card(cds_client: TestClient, signer: Signer) -> None:
    quiet = {
        "patient": patient("p-q"),
        "encounters": bundle(),
        "conditions": bundle(condition("p-q", "I10")),
        "screens": bundle(),
    }
    r = cds_client.post(PV, json=call("p-q", **quiet), headers=signer.headers(PV))
    assert r.status_code == 200 and r.json() == {"cards": []}


def test_a_prefetched_resource_of_the_wrong_shape_is_passed_over_not_an_error(
    cds_client: TestClient, signer: Signer
) -> None:
    """The EHR's prefetch is whatever it sends: a screen whose effectivePeriod is a bare date string
    was a 500; it tells nothing, and the rest of the prefetch still makes the card."""
    prefetch = eligible_prefetch("p-odd")
    odd = screen("p-odd", TODAY, positive=True)
    odd["effectivePeriod"], odd["interpretation"] = odd.pop("effectiveDateTime"), 1
    prefetch["screens"] = bundle(odd)
    r = cds_client.post(PV, json=call("p-odd", **prefetch), headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert card["summary"].startswith("Eligible for case management") and "social-needs" not in card["detail"]


def test_a_patient_in_an_open_case_sees_the_manager_the_follow_up_and_the_plan_after_discharge(
    cds_client: TestClient, cds_store: Store, signer: Signer
) -> None:
    case = open_case(cds_store, "p-open")
    r = cds_client.post(PV, json=call("p-open", **eligible_prefetch("p-open")), headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    for card in cards:
        assert_card_shape(card)
    due = (TODAY - dt.timedelta(days=3) + dt.timedelta(days=7)).isoformat()
    assert cards[0]["summary"] == f"Open case with Dana Reed; next follow-up due {due}"
    # The tracker's discharge three days ago: the same transition-plan rule as encounter-discharge.
    assert cards[1]["summary"] == f"Transition plan needed: case with Dana Reed; follow-up due {due}"
    assert cards[1]["indicator"] == "warning"
    urls = {link["url"] for link in cards[1]["links"]}
    assert f"{BASE}/api/v1/cases/{case.id}/transitions/1/summary" in urls


def test_a_patient_in_an_open_case_is_answered_though_the_ehrs_server_cannot_be_read(
    cds_client: TestClient, cds_store: Store, signer: Signer
) -> None:
    """Nothing prefetched and the EHR's server down (nothing listens there): the open case and its
    manager come from the store, so the card is answered; it was a 422, no card, for want of data
    only eligibility reads. Someone to assess gets 412, the status CDS Hooks 2.0 gives it."""
    open_case(cds_store, "p-open")
    body = call("p-open")
    body["fhirServer"] = "https://127.0.0.1:9/fhir"
    body["fhirAuthorization"] = {"access_token": "ehr-token", "token_type": "Bearer"}
    r = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    assert [c["summary"].split(";")[0] for c in r.json()["cards"]] == [
        "Open case with Dana Reed",
        "Transition plan needed: case with Dana Reed",
    ]
    # Someone the service must assess from that server still learns why there is no answer.
    other = call("p-other")
    other["fhirServer"], other["fhirAuthorization"] = body["fhirServer"], body["fhirAuthorization"]
    refused = cds_client.post(PV, json=other, headers=signer.headers(PV))
    assert refused.status_code == 412, refused.text  # CDS Hooks 2.0: the data could not be had
    assert "the EHR's server could not be reached for the patient query" in refused.json()["detail"]


# --- encounter-discharge --------------------------------------------------------------------------


def test_a_discharge_of_a_patient_in_an_open_case_asks_for_the_transition_plan(
    cds_client: TestClient, cds_store: Store, signer: Signer
) -> None:
    case = open_case(cds_store, "p-dis")
    body = call("p-dis", "encounter-discharge", patient=patient("p-dis"))
    r = cds_client.post(DISCHARGE, json=body, headers=signer.headers(DISCHARGE))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert_card_shape(card)
    assert card["summary"].startswith("Transition plan needed: case with Dana Reed; follow-up due")
    assert f"{BASE}/console/#case/{case.id}" in {link["url"] for link in card["links"]}
    nobody = cds_client.post(DISCHARGE, json=call("p-none", "encounter-discharge"), headers=signer.headers(DISCHARGE))
    assert nobody.status_code == 200 and nobody.json() == {"cards": []}


def test_calls_the_service_cannot_answer_are_refused_saying_why(cds_client: TestClient, signer: Signer) -> None:
    wrong_hook = cds_client.post(PV, json=call("p", "encounter-discharge"), headers=signer.headers(PV))
    assert wrong_hook.status_code == 422 and "answers the patient-view hook" in wrong_hook.json()["detail"]
    unknown = "/cds-services/nope"
    assert cds_client.post(unknown, json=call("p"), headers=signer.headers(unknown)).status_code == 404
    no_patient = call("p")
    no_patient["context"] = {"userId": "Practitioner/1"}
    r = cds_client.post(PV, json=no_patient, headers=signer.headers(PV))
    assert r.status_code == 422 and "context.patientId is required" in r.json()["detail"]


@pytest.mark.parametrize("patient_id", ["Patient/p-1", "p 1", "p-1&_count=1", "../metadata", "p" * 65])
def test_a_patient_id_that_is_no_fhir_id_is_the_ehrs_mistake_not_an_error(
    cds_client: TestClient, cds_store: Store, signer: Signer, patient_id: str
) -> None:
    """The id goes into the prefetch queries read from the EHR's server: it was sent there as given
    (a reference's ``Patient/`` or an ``&`` making a query of its own) or failed as an error of ours."""
    body = call(patient_id, patient=None, encounters=None, conditions=None, screens=None)
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {"access_token": "ehr-token", "token_type": "Bearer"}
    r = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "context.patientId must be a FHIR id" in r.json()["detail"]
    with cds_store.session(read_only=True) as s:
        assert list_cases(s) == []


def test_a_patient_whose_open_case_this_version_cannot_read_gets_no_card_not_an_error_nor_a_referral(
    cds_client: TestClient, cds_store: Store, signer: Signer
) -> None:
    """The case is stored before a rule of the case model: the EHR is not told to refer the patient
    again (an eligibility card), nor answered with an error; the case stays as it is."""
    from tests.unreadable import make_unreadable

    case = open_case(cds_store, "p-old")
    make_unreadable(cds_store, case.id)

    viewed = cds_client.post(PV, json=call("p-old", **eligible_prefetch("p-old")), headers=signer.headers(PV))
    body = call("p-old", "encounter-discharge", patient=patient("p-old"))
    discharged = cds_client.post(DISCHARGE, json=body, headers=signer.headers(DISCHARGE))

    assert (viewed.status_code, viewed.json()) == (200, {"cards": []}), viewed.text
    assert (discharged.status_code, discharged.json()) == (200, {"cards": []}), discharged.text
