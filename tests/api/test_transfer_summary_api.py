"""`GET /api/v1/cases/{id}/transitions/{n}/summary`: the transfer summary, to whoever may see the case."""

from __future__ import annotations

from fastapi.testclient import TestClient
from fhir.resources.bundle import Bundle as BundleR5
from fhir.resources.R4B.bundle import Bundle as BundleR4

from fhir_cm.store import Store, save_case
from tests.api.conftest import Keys, bearer
from tests.sync.test_transfer_summary import journey_case


def test_the_summary_is_served_as_a_fhir_document_to_who_may_see_the_case(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    case = journey_case()  # managed by cm-1
    with api_store.session() as s:
        save_case(s, case, enqueue=False)
    path = f"/api/v1/cases/{case.id}/transitions/1/summary"
    r4 = client.get(path, headers=bearer(keys.supervisor))
    assert r4.status_code == 200 and r4.headers["content-type"].startswith("application/fhir+json")
    BundleR4.model_validate(r4.json())
    assert r4.json()["entry"][0]["resource"]["category"][0]["coding"][0]["code"] == "18761-7"
    r5 = client.get(path, params={"fhirVersion": "R5"}, headers=bearer(keys.supervisor))
    BundleR5.model_validate(r5.json())
    assert client.get(path, headers=bearer(keys.cm1)).status_code == 200  # cm-1 manages the case
    assert client.get(path, headers=bearer(keys.cm2)).status_code == 404  # not their case
    missing = client.get(f"/api/v1/cases/{case.id}/transitions/9/summary", headers=bearer(keys.supervisor))
    assert missing.status_code == 404 and "there is no move 9" in missing.json()["detail"]
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get(path).status_code == 401
