"""The referral an eligibility card suggests is a ServiceRequest in the FHIR version of the EHR's
server (``FHIR_CM_FHIR_VERSION``): R5 has no ``reasonCode`` (``reason``, CodeableReferences), and an
R4 resource is refused there."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.servicerequest import ServiceRequest as ServiceRequestR4
from fhir.resources.servicerequest import ServiceRequest as ServiceRequestR5

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.store import Store

from .conftest import BASE, ISSUER, TODAY, Signer
from .test_cds_hooks import PV, call, eligible_prefetch


def _referral(store: Store, signer: Signer, jwks: str, version: str) -> dict[str, Any]:
    settings = Settings(
        database_url="sqlite://", fhir_version=version, cds_issuers=json.dumps({ISSUER: jwks}), public_url=BASE
    )
    with TestClient(create_app(settings, store=store, clock=lambda: TODAY), base_url=BASE) as cds:
        r = cds.post(PV, json=call("p-elig", **eligible_prefetch("p-elig")), headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    [action] = card["suggestions"][0]["actions"]
    resource: dict[str, Any] = action["resource"]
    return resource


def test_an_r5_server_is_suggested_an_r5_referral(
    cds_store: Store, signer: Signer, signer_and_jwks: tuple[Signer, str]
) -> None:
    resource = _referral(cds_store, signer, signer_and_jwks[1], "R5")
    referral = ServiceRequestR5.model_validate(resource)  # R5 refuses reasonCode
    assert referral.subject.reference == "Patient/p-elig" and referral.intent == "order"
    assert "2 inpatient admissions in 365 days" in [r.concept.text for r in referral.reason]
    assert referral.code.concept.text == "Referral to case management"


@pytest.mark.parametrize("version", ["R4", "auto"])
def test_an_r4_server_or_one_of_no_version_set_is_suggested_an_r4_referral(
    cds_store: Store, signer: Signer, signer_and_jwks: tuple[Signer, str], version: str
) -> None:
    resource = _referral(cds_store, signer, signer_and_jwks[1], version)
    referral = ServiceRequestR4.model_validate(resource)
    assert referral.reasonCode and "2 inpatient admissions in 365 days" in [r.text for r in referral.reasonCode]
