"""The facade inside the real app (``create_app``): API keys, roles, audit, OpenAPI — all FHIR under /fhir."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.store import Store, list_api_keys, list_audit, save_case
from fhir_cm.synthetic import generate_cases
from tests.mapping.fhir_check import validate_bundle

from .conftest import Keys, bearer


def _saved(store: Store, n: int = 3) -> list[Case]:
    cases = list(generate_cases(n, 5))
    with store.session() as s:
        for case in cases:
            save_case(s, case)
    return cases


def test_a_service_key_searches_and_reads_the_stored_cases(client: TestClient, keys: Keys, api_store: Store) -> None:
    cases = _saved(api_store)
    response = client.get("/fhir/Goal?_count=200", headers=bearer(keys.service))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json; fhirVersion=4.0"
    bundle = response.json()
    validate_bundle(bundle, "R4")
    assert {e["resource"]["id"] for e in bundle["entry"]} == {g.id for c in cases for g in c.goals}
    episode = client.get(f"/fhir/EpisodeOfCare/{cases[0].id}", headers=bearer(keys.service))
    assert episode.status_code == 200 and episode.json()["id"] == cases[0].id


def test_searches_and_reads_are_audited_by_case(client: TestClient, keys: Keys, api_store: Store) -> None:
    cases = _saved(api_store)
    search = client.get(f"/fhir/EpisodeOfCare?patient={cases[1].patient.id}", headers=bearer(keys.service))
    read = client.get(f"/fhir/Goal/{cases[2].goals[0].id}", headers=bearer(keys.service))
    with api_store.session() as s:
        service = next(k for k in list_api_keys(s) if k.name == "service")
        entries = list_audit(s, principal=service.key_id)
    assert {(e.action, e.case_id, e.request_id) for e in entries} == {
        ("fhir-search", cases[1].id, search.headers["x-request-id"]),  # the audit row found by the answer's id
        ("fhir-read", cases[2].id, read.headers["x-request-id"]),
    }


def test_auth_errors_under_fhir_are_operation_outcomes_not_problems(client: TestClient, keys: Keys) -> None:
    missing = client.get("/fhir/Goal")
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/fhir+json")
    assert missing.json()["issue"][0]["code"] == "login"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forbidden = client.get("/fhir/Goal/x", headers=bearer(keys.cm1))
    assert forbidden.status_code == 403
    assert forbidden.json()["issue"][0]["code"] == "forbidden"
    for response in (
        client.get("/fhir/Nope", headers=bearer(keys.service)),
        client.delete("/fhir/Goal/x", headers=bearer(keys.service)),
        client.get("/fhir/Goal?_count=x", headers=bearer(keys.service)),
    ):
        assert response.headers["content-type"].startswith("application/fhir+json")
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir/Goal/x/_history"),
        ("GET", "/fhir/Goal/x/_history/2"),
        ("PUT", "/fhir/Goal/x"),
        ("DELETE", "/fhir/Goal/x"),
        ("POST", "/fhir/Goal"),
        ("OPTIONS", "/fhir/Goal"),
        ("GET", "/fhir/"),
        ("POST", "/fhir"),
        ("GET", "/fhir/metadata/x"),
    ],
)
def test_an_unknown_path_or_a_write_without_a_key_is_401_not_404_or_405(
    client: TestClient, keys: Keys, method: str, path: str
) -> None:
    """A stranger learns nothing of which paths and types exist; a reader still gets the 404 or 405."""
    response = client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["issue"][0]["code"] == "login"
    known = client.request(method, path, headers=bearer(keys.service))
    assert known.status_code in (404, 405)
    assert known.json()["resourceType"] == "OperationOutcome"


def test_a_write_to_the_public_metadata_is_405_without_a_key(client: TestClient) -> None:
    response = client.delete("/fhir/metadata")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]


def test_metadata_is_public_and_the_openapi_document_names_fhir_json(client: TestClient) -> None:
    assert client.get("/fhir/metadata").json()["resourceType"] == "CapabilityStatement"
    paths = client.get("/openapi.json").json()["paths"]
    search = paths["/fhir/{resource_type}"]["get"]
    assert "application/fhir+json" in search["responses"]["200"]["content"]
    assert {"patient", "status", "_count"} <= {p["name"] for p in search["parameters"]}
    assert "/fhir/{path}" not in paths


def test_the_public_url_and_the_fhir_server_are_the_facades_own_bases(keys: Keys, api_store: Store) -> None:
    """Behind a proxy a client names a patient at the façade's public URL, and a pulled copy's
    server names it at its own base: both are the local patient; another server's is not."""
    cases = _saved(api_store, 1)
    pid, goals = cases[0].patient.id, {g.id for g in cases[0].goals}
    settings = Settings(
        database_url="sqlite://", public_url="https://cm.example.org/", fhir_base="https://hospital.example/fhir"
    )
    with TestClient(create_app(settings, store=api_store)) as client:

        def found(subject: str) -> set[str]:
            response = client.get("/fhir/Goal", params={"subject": subject}, headers=bearer(keys.service))
            assert response.status_code == 200, response.text
            return {e["resource"]["id"] for e in response.json().get("entry", [])}

        assert found(f"https://cm.example.org/fhir/Patient/{pid}") == goals
        assert found(f"https://hospital.example/fhir/Patient/{pid}") == goals
        assert found(f"https://other.example/fhir/Patient/{pid}") == set()
