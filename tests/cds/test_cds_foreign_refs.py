"""The patient-view service reads a reference as one to the call's patient only when it is relative or
absolute at the call's ``fhirServer``: an Encounter or Condition about
``https://other.example/fhir/Patient/<id>`` — prefetched by the EHR, or found by a server that matches
an absolute reference by its tail (sekmet does) — is another person's, and counts toward nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_cm.fhir import AsyncFhirClient
from tests.identify.population import condition, encounter, patient
from tests.identify.test_screening_foreign_refs import write_apart

from .conftest import TODAY, Signer
from .test_cds_hooks import PV, bundle, call

pytestmark = pytest.mark.server
OTHER = "https://other.example/fhir"
TOKEN = {"access_token": "ehr-token-123", "token_type": "Bearer", "expires_in": 300}


def stays(pid: str, second: str) -> list[dict[str, Any]]:
    """The patient, one admission of theirs, and a second admission and a high-risk condition whose
    subject is ``second`` (either would make them eligible, were it theirs)."""
    day = lambda n: TODAY - dt.timedelta(days=n)  # noqa: E731
    out = [
        patient(pid),
        encounter(pid, "IMP", day(90), 3, rid=f"{pid}-r1"),
        encounter(pid, "IMP", day(40), 2, rid=f"{pid}-r2"),
        condition(pid, "C34.90", rid=f"{pid}-r3"),
    ]
    for r in out[2:]:
        r["subject"] = {"reference": second}
    return out


def details(r: Any) -> str:
    assert r.status_code == 200, r.text
    return " ".join(c["detail"] for c in r.json()["cards"])


def test_another_servers_patients_prefetched_stay_and_condition_make_no_one_eligible(
    cds_client: TestClient, signer: Signer
) -> None:
    server = "https://ehr.example/fhir"
    elsewhere, here = f"cdsf-{uuid.uuid4().hex[:10]}", f"cdsf-{uuid.uuid4().hex[:10]}"
    said = {}
    for pid, second in ((elsewhere, f"{OTHER}/Patient/{elsewhere}"), (here, f"{server}/Patient/{here}")):
        resources = stays(pid, second)
        prefetch = {"patient": resources[0], "encounters": bundle(*resources[1:3]),
                    "conditions": bundle(resources[3]), "screens": bundle()}  # fmt: skip
        said[pid] = details(cds_client.post(PV, json={**call(pid, **prefetch), "fhirServer": server},
                                            headers=signer.headers(PV)))  # fmt: skip
    assert said[elsewhere] == ""  # one admission of theirs is no reason
    # Named absolutely at the EHR's own server: theirs.
    assert "2 inpatient admissions in 365 days" in said[here] and "high-risk condition" in said[here]


def test_another_servers_patients_stay_read_from_the_ehrs_server_makes_no_one_eligible(
    cds_client: TestClient, signer: Signer, fhir_server: str
) -> None:
    elsewhere, here = f"cdsf-{uuid.uuid4().hex[:10]}", f"cdsf-{uuid.uuid4().hex[:10]}"

    async def seed() -> None:
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
            theirs = f"{fhir.base_url}/Patient/{here}"
            await write_apart(fhir, [*stays(elsewhere, f"{OTHER}/Patient/{elsewhere}"), *stays(here, theirs)])
            assert (await fhir.read("Encounter", f"{elsewhere}-r2"))["subject"]["reference"].startswith(OTHER)

    asyncio.run(seed())
    said = {}
    for pid in (elsewhere, here):
        body = {**call(pid), "fhirServer": fhir_server, "fhirAuthorization": TOKEN}  # nothing prefetched
        said[pid] = details(cds_client.post(PV, json=body, headers=signer.headers(PV)))
    assert said[elsewhere] == ""
    assert "2 inpatient admissions in 365 days" in said[here] and "high-risk condition" in said[here]
