"""A hook call whose data is partly had: one query the EHR's server refuses leaves the others to
answer; without the patient's own record no referral is suggested (they may have died)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from tests.identify.population import patient

from .conftest import Signer
from .test_cds_fetch import _seed, eligible_on_server
from .test_cds_hooks import PV, call, eligible_prefetch

pytestmark = pytest.mark.server

TOKEN = {"access_token": "ehr-token-123", "token_type": "Bearer"}


def test_a_query_the_ehrs_server_refuses_leaves_the_others_to_answer(
    cds_client: TestClient, signer: Signer, fhir_server: str
) -> None:
    """A token whose scopes leave out Observation (403 on that search, as SMART servers answer): the
    visits and conditions read still make the card; it was a 422 and no card at all."""
    pid = f"cdsp-{uuid.uuid4().hex[:10]}"
    _seed(fhir_server, eligible_on_server(pid))
    body = call(pid)
    body["fhirServer"], body["fhirAuthorization"] = fhir_server, TOKEN
    refusal = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}
    with respx.mock(assert_all_called=True) as mock:
        mock.get(url__regex=r"/Observation\?").mock(return_value=httpx.Response(403, json=refusal))
        mock.route(host="127.0.0.1").pass_through()  # the EHR's server and JWKS, both on loopback
        r = cds_client.post(PV, json=body, headers=signer.headers(PV))

    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert card["summary"].startswith("Eligible for case management")
    assert "3 emergency visits in 365 days" in card["detail"]


def test_without_the_patients_record_no_referral_is_suggested(cds_client: TestClient, signer: Signer) -> None:
    """Visits and conditions enough for a referral, but no Patient to tell whether they died or were
    merged into another record (not prefetched, no server to read it from): no card, not a referral
    of a deceased patient."""
    prefetch = eligible_prefetch("p-norec")
    del prefetch["patient"]
    r = cds_client.post(PV, json=call("p-norec", **prefetch), headers=signer.headers(PV))
    assert r.status_code == 200 and r.json() == {"cards": []}
    # The EHR erring in its prefetch of the Patient (CDS Hooks 2.0: an OperationOutcome in its place).
    prefetch["patient"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    r = cds_client.post(PV, json=call("p-norec", **prefetch), headers=signer.headers(PV))
    assert r.status_code == 412 and r.json()["detail"] == "the EHR could not prefetch patient"  # no card, and why
    # Another patient's record in its place tells nothing of this one.
    prefetch["patient"] = patient("p-someone-else")
    r = cds_client.post(PV, json=call("p-norec", **prefetch), headers=signer.headers(PV))
    assert r.status_code == 200 and r.json() == {"cards": []}


def test_a_patient_the_ehrs_server_does_not_hold_is_suggested_no_referral(
    cds_client: TestClient, signer: Signer, fhir_server: str
) -> None:
    pid = f"cdsq-{uuid.uuid4().hex[:10]}"
    prefetch: dict[str, Any] = {k: v for k, v in eligible_prefetch(pid).items() if k != "patient"}
    body = call(pid, **prefetch)
    body["fhirServer"], body["fhirAuthorization"] = fhir_server, TOKEN  # the Patient read there: 404
    r = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 200 and r.json() == {"cards": []}, r.text
