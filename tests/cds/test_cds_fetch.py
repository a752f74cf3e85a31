"""What the EHR did not prefetch is read from its FHIR server with the fhirAuthorization token; the
referral a card suggests is one a real server (HAPI) accepts."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient
from pydantic import ValidationError

from fhir_cm.cds._models import FhirAuthorization
from fhir_cm.fhir import AsyncFhirClient
from tests.identify.population import condition, encounter, patient, transaction

from .conftest import TODAY, Signer
from .test_cds_hooks import PV, assert_card_shape, call

pytestmark = pytest.mark.server


def _seed(base: str, resources: list[dict[str, Any]]) -> None:
    async def go() -> None:
        async with AsyncFhirClient(base, enforce_capabilities=False) as fhir:
            await fhir.transaction(transaction(resources)["entry"])

    asyncio.run(go())


def eligible_on_server(pid: str) -> list[dict[str, Any]]:
    days = lambda n: TODAY - dt.timedelta(days=n)  # noqa: E731
    resources = [
        patient(pid),
        encounter(pid, "EMER", days(200)),
        encounter(pid, "EMER", days(100)),
        encounter(pid, "EMER", days(10)),
        condition(pid, "F10.20"),
    ]
    for i, r in enumerate(resources[1:], start=1):
        r["id"] = f"{pid}-r{i}"
    return resources


def test_what_was_not_prefetched_is_read_from_the_ehrs_server(
    cds_client: TestClient, signer: Signer, fhir_server: str
) -> None:
    pid = f"cds-{uuid.uuid4().hex[:10]}"
    _seed(fhir_server, eligible_on_server(pid))
    body = call(pid)  # no prefetch at all
    body["fhirServer"] = fhir_server
    body["fhirAuthorization"] = {"access_token": "ehr-token-123", "token_type": "Bearer", "expires_in": 300}
    r = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert_card_shape(card)
    assert "3 emergency visits in 365 days" in card["detail"] and "substance use disorder" in card["detail"]


def test_the_age_read_from_the_ehrs_patient_is_that_of_the_call_day(
    cds_client: TestClient, signer: Signer, fhir_server: str
) -> None:
    """The Patient the service reads anyway (to know the patient is alive) carries the birth date: a
    birth year gives the ages it allows on the app's day (1 June 2026), no birth date shows."""
    pid = f"cds-{uuid.uuid4().hex[:10]}"
    resources = eligible_on_server(pid)
    resources[0]["birthDate"] = "1956"
    _seed(fhir_server, resources)
    body = call(pid)
    body["fhirServer"] = fhir_server
    body["fhirAuthorization"] = {"access_token": "ehr-token-123", "token_type": "Bearer", "expires_in": 300}
    r = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert "aged 69 or 70, with 3 emergency visits in 365 days" in card["detail"]
    assert "1956" not in r.text


def test_the_access_token_goes_with_every_read_and_never_in_the_clear(cds_client: TestClient, signer: Signer) -> None:
    ehr = "https://ehr.example.org/fhir"
    pid = "p-token"
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()  # the EHR's JWKS, served on loopback
        read = mock.get(f"{ehr}/Patient/{pid}").mock(return_value=httpx.Response(200, json=patient(pid)))
        route = mock.get(url__regex=rf"^{ehr}/.*").mock(  # the searches (the read is matched first)
            return_value=httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": []})
        )
        body = call(pid)
        body["fhirServer"] = ehr
        body["fhirAuthorization"] = {"access_token": "ehr-token-123", "token_type": "Bearer"}
        r = cds_client.post(PV, json=body, headers=signer.headers(PV))
        assert r.status_code == 200, r.text
        calls = [*route.calls, *read.calls]
        assert len(calls) == 4  # patient, encounters, conditions, screens
        assert {c.request.headers["authorization"] for c in calls} == {"Bearer ehr-token-123"}
    clear = call(pid)
    clear["fhirServer"] = "http://ehr.example.org/fhir"
    clear["fhirAuthorization"] = {"access_token": "ehr-token-123"}
    refused = cds_client.post(PV, json=clear, headers=signer.headers(PV))
    assert refused.status_code == 422 and "https" in refused.json()["detail"]


@pytest.mark.parametrize(
    "server",
    [
        "http://localhost.attacker.example/fhir",  # begins like loopback, is not
        "http://localhost@attacker.example/fhir",  # "localhost" as a user name
        "http://127.0.0.1.attacker.example/fhir",
        "https://",  # no host
        "https://[::1",  # not a URL
        "http://127.0.0.1:99999/fhir",  # no such port
    ],
)
def test_a_server_that_only_looks_safe_gets_no_token(cds_client: TestClient, signer: Signer, server: str) -> None:
    body = call("p-look")
    body["fhirServer"] = server
    body["fhirAuthorization"] = {"access_token": "ehr-token-123"}
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()  # the EHR's JWKS, served on loopback
        sent = mock.route(host__regex=r"attacker").mock(return_value=httpx.Response(500))
        refused = cds_client.post(PV, json=body, headers=signer.headers(PV))
    assert refused.status_code == 422, refused.text
    assert "https" in refused.json()["detail"] and not sent.calls


def test_the_suggested_referral_is_created_by_a_real_server(
    cds_client: TestClient, signer: Signer, hapi_r4: Any
) -> None:
    pid = f"cdsref-{uuid.uuid4().hex[:10]}"
    resources = eligible_on_server(pid)
    _seed(hapi_r4.base_url, resources[:1])
    prefetch = {
        "patient": resources[0],
        "encounters": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in resources[1:4]],
        },
        "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": resources[4]}]},
        "screens": {"resourceType": "Bundle", "type": "searchset", "entry": []},
    }
    card = cds_client.post(PV, json=call(pid, **prefetch), headers=signer.headers(PV)).json()["cards"][0]
    resource = card["suggestions"][0]["actions"][0]["resource"]

    async def create() -> dict[str, Any]:
        async with AsyncFhirClient(hapi_r4.base_url, enforce_capabilities=False) as fhir:
            made = await fhir.create(resource)
            return await fhir.read("ServiceRequest", str(made.id))

    stored = asyncio.run(create())  # what the EHR does when the clinician accepts the suggestion
    assert stored["subject"]["reference"] == f"Patient/{pid}"
    assert stored["code"]["text"] == "Referral to case management" and stored["status"] == "active"


def test_an_access_token_that_cannot_go_in_a_header_is_the_ehrs_mistake() -> None:
    # Trimmed when only a line end surrounds it; refused (a 400 from the model) when a space is inside.
    assert FhirAuthorization(access_token="ehr-token-123\n").access_token == "ehr-token-123"
    with pytest.raises(ValidationError, match="holds a space"):
        FhirAuthorization(access_token="ehr token")
