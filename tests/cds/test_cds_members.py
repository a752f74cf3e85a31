"""A screen whose answers are member Observations (``hasMember``, as the Gravity SDOH Clinical Care IG
and US Core's SDOH assessments record them) is read with its members by the patient-view service:
the ``screens`` prefetch asks for the panels' codes, so the members the EHR did not send are read from
its server by id, in one query for the call, and a positive answer in one makes the screen positive."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from tests.identify.population import patient
from tests.identify.test_screening_members import item, panel

from .conftest import TODAY, Signer
from .test_cds_fetch import _seed
from .test_cds_hooks import PV, bundle, call

pytestmark = pytest.mark.server
TOKEN = {"access_token": "ehr-token-123", "token_type": "Bearer", "expires_in": 300}


def answered(pid: str, answer: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A Gravity-shaped AHC HRSN screen: the panel and its two answers."""
    members = [
        item(pid, f"{pid}-food", "88122-7", "LA28399-6", "Never true"),
        item(pid, f"{pid}-transport", "93030-5", answer, "Yes" if answer == "LA33-6" else "No"),
    ]
    the_panel = panel(pid, f"{pid}-panel", [m["id"] for m in members])
    for r in (the_panel, *members):  # on the app's day (1 June 2026), not the machine's
        r["effectiveDateTime"] = (TODAY - dt.timedelta(days=12)).isoformat()
    return the_panel, members


@pytest.mark.parametrize("prefetched", [True, False], ids=["panel-prefetched", "nothing-prefetched"])
def test_a_positive_answer_in_a_member_read_from_the_ehr_makes_the_patient_eligible(
    cds_client: TestClient, signer: Signer, fhir_server: str, prefetched: bool
) -> None:
    pid = f"cdsm-{uuid.uuid4().hex[:10]}"
    the_panel, members = answered(pid, "LA33-6")
    _seed(fhir_server, [patient(pid), the_panel, *members])
    prefetch: dict[str, Any] = {}
    if prefetched:  # the EHR sent the panel the template asked for, not its members
        prefetch = {
            "patient": patient(pid),
            "encounters": bundle(),
            "conditions": bundle(),
            "screens": bundle(the_panel),
        }
    body = {**call(pid, **prefetch), "fhirServer": fhir_server, "fhirAuthorization": TOKEN}
    r = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert "a positive social-needs screen (AHC HRSN)" in card["detail"]


def test_members_the_ehr_sent_with_the_panel_are_read_from_the_prefetch(cds_client: TestClient, signer: Signer) -> None:
    """An EHR that sent the members with the panel (e.g. ``_include=Observation:has-member``) needs no
    server: yes in one is a positive screen, no in all is none."""
    yes, no = f"cdsm-{uuid.uuid4().hex[:10]}", f"cdsm-{uuid.uuid4().hex[:10]}"
    cards = {}
    for pid, answer in ((yes, "LA33-6"), (no, "LA32-8")):
        the_panel, members = answered(pid, answer)
        prefetch = {"patient": patient(pid), "encounters": bundle(), "conditions": bundle(),
                    "screens": bundle(the_panel, *members)}  # fmt: skip
        r = cds_client.post(PV, json=call(pid, **prefetch), headers=signer.headers(PV))
        assert r.status_code == 200, r.text
        cards[pid] = " ".join(c["detail"] for c in r.json()["cards"])
    assert "a positive social-needs screen (AHC HRSN)" in cards[yes]
    assert "social-needs" not in cards[no] and "AHC HRSN" not in cards[no]


def test_a_server_refusing_the_answers_query_leaves_the_panels_own_word(
    cds_client: TestClient, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that refuses ``_id`` with ``patient`` (no local server does): the members are asked
    for once, all in one query, and the refusal leaves the answer to the panel's own interpretation
    (positive here), logged without the patient."""
    ehr, pid = "https://ehr.example.org/fhir", "p-members"
    the_panel, members = answered(pid, "LA33-6")
    the_panel["interpretation"] = [{"coding": [{"code": "POS"}]}]
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()  # the EHR's JWKS, served on loopback
        answers = mock.get(f"{ehr}/Observation", params={"_id": ",".join(m["id"] for m in members)}).mock(
            return_value=httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": []})
        )
        mock.get(f"{ehr}/Observation").mock(return_value=httpx.Response(200, json=bundle(the_panel)))
        mock.get(f"{ehr}/Patient/{pid}").mock(return_value=httpx.Response(200, json=patient(pid)))
        mock.get(url__regex=rf"^{ehr}/(Encounter|Condition)").mock(return_value=httpx.Response(200, json=empty))
        body = {**call(pid), "fhirServer": ehr, "fhirAuthorization": TOKEN}
        r = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    assert answers.call_count == 1 and answers.calls[0].request.url.params["patient"] == pid
    [card] = r.json()["cards"]
    assert "a positive social-needs screen (AHC HRSN)" in card["detail"]
    assert "screens' answers" in caplog.text and pid not in caplog.text


def test_an_answer_in_a_section_read_from_the_ehr_counts(
    cds_client: TestClient, signer: Signer, fhir_server: str
) -> None:
    """A PRAPARE screen recorded by its LOINC sections (the panel's members are sections, theirs the
    answers): both levels are read from the EHR's server, and the yes in a section counts."""
    pid = f"cdss-{uuid.uuid4().hex[:10]}"
    the_panel, members = answered(pid, "LA33-6")
    section = {
        **the_panel,
        "id": f"{pid}-money",
        "code": {"coding": [{"system": "http://loinc.org", "code": "93041-2"}]},
    }
    top = {**the_panel, "code": {"coding": [{"system": "http://loinc.org", "code": "93025-5"}]},
           "hasMember": [{"reference": f"Observation/{pid}-money"}]}  # fmt: skip
    _seed(fhir_server, [patient(pid), top, section, *members])
    body = {**call(pid), "fhirServer": fhir_server, "fhirAuthorization": TOKEN}
    r = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert "a positive social-needs screen (PRAPARE)" in card["detail"]


def test_an_answer_recorded_with_no_panel_is_read_from_the_ehr_as_a_screen(
    cds_client: TestClient, signer: Signer, fhir_server: str
) -> None:
    """A screen recorded as its answers alone (US Core's SDOH assessments allow it): the ``screens``
    template asks for the questions' codes too, so the answer is read from the EHR's server and counts
    as a screen of the panel whose question it answers with a need."""
    pid = f"cdsa-{uuid.uuid4().hex[:10]}"
    alone = item(pid, f"{pid}-living", "71802-3", "LA31995-6", "I do not have a steady place to live")
    alone["effectiveDateTime"] = (TODAY - dt.timedelta(days=12)).isoformat()
    _seed(fhir_server, [patient(pid), alone])
    body = {**call(pid), "fhirServer": fhir_server, "fhirAuthorization": TOKEN}
    r = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert "a positive social-needs screen (AHC HRSN)" in card["detail"]
