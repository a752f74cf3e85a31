"""What the schemathesis run found once, pinned one by one: the API answers as its OpenAPI says."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .conftest import Keys, bearer, create


def test_a_405_names_every_method_the_path_serves(client: TestClient, keys: Keys) -> None:
    for path, allowed in [
        ("/api/v1/cases", "GET, HEAD, POST"),
        ("/api/v1/cases/some-case", "GET, HEAD, PATCH"),
        ("/api/v1/cases/some-case/goals", "GET, HEAD, POST"),
    ]:
        r = client.options(path, headers=bearer(keys.supervisor))
        assert r.status_code == 405 and r.headers["allow"] == allowed, path
        assert r.headers["content-type"] == "application/problem+json"


def test_an_instant_is_iso_8601_not_a_number(client: TestClient, keys: Keys) -> None:
    for bad in ("0.5", "1700000000", "yesterday"):
        r = client.get(f"/api/v1/audit?since={bad}", headers=bearer(keys.supervisor))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "since", bad
    assert client.get("/api/v1/audit?since=2025-06-01T08:00:00Z", headers=bearer(keys.supervisor)).status_code == 200


def test_a_boolean_is_a_boolean(client: TestClient, keys: Keys) -> None:
    case = create(client, keys.supervisor, id="case-b")
    goal = {"description": "Walks to the shop", "start": "2025-02-01", "self_care": 1}
    r = client.post(f"/api/v1/cases/{case['case']['id']}/goals", json=goal, headers=bearer(keys.supervisor))
    assert r.status_code == 422 and any(e["field"].endswith("self_care") for e in r.json()["errors"])


def test_a_format_the_facade_cannot_produce_is_refused_whatever_else_is_asked(client: TestClient, keys: Keys) -> None:
    r = client.get("/fhir/CarePlan?_format=xml&_fhirVersion=5.0", headers=bearer(keys.service))
    assert r.status_code == 406 and r.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/CarePlan?_format=json&_fhirVersion=5.0", headers=bearer(keys.service)).status_code == 200


def test_the_openapi_document_types_facade_answers_as_fhir_resources(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/fhir/metadata", "/fhir/{resource_type}", "/fhir/{resource_type}/{resource_id}"):
        schema = paths[path]["get"]["responses"]["200"]["content"]["application/fhir+json"]["schema"]
        assert schema["type"] == "object" and "resourceType" in schema["required"], path
    for path in ("/notifications/{subscription_id}", "/cds-services/{service_id}"):
        answers = paths[path]["post"]["responses"]
        assert {"400", "401", "422"} <= set(answers) and "application/problem+json" in answers["401"]["content"]
    assert "502" in paths["/api/v1/sync/push"]["post"]["responses"]


def test_every_operation_has_an_operation_id_of_its_own(client: TestClient) -> None:
    """OpenAPI: an operationId names one operation (tools generate a function per id)."""
    paths = client.get("/openapi.json").json()["paths"]
    ids = [
        op["operationId"]
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    ]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
