"""Bad input gets a 4xx problem+json naming the field, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import Keys, bearer, create, new_case

PROBLEM = "application/problem+json"


def _post(client: TestClient, key: str, path: str, content: bytes) -> tuple[int, dict]:
    response = client.post(path, content=content, headers={**bearer(key), "Content-Type": "application/json"})
    assert response.headers["content-type"] == PROBLEM, response.text
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"not json",
        b'{"programme": "health-care", "patient": {"kind": "patient", "id": "\\ud800"}}',
        b'{"programme": NaN}',
        b'{"programme": 1e999}',
        b'{"programme": "health-care", "plan_summary": "a\\u0000b"}',
        b"\xff\xfe",
        b"[]",
        b'"a string"',
        b"12345678901234567890123456789012345678901234567890",
    ],
)
def test_malformed_bodies_are_422(client: TestClient, keys: Keys, content: bytes) -> None:
    status, body = _post(client, keys.cm1, "/api/v1/cases", content)
    assert status == 422
    assert body["status"] == 422 and body["errors"]


def test_wrong_types_name_the_field(client: TestClient, keys: Keys) -> None:
    response = client.post("/api/v1/cases", json=new_case(acuity=7, start="yesterday"), headers=bearer(keys.cm1))
    assert response.status_code == 422
    fields = sorted(e["field"] for e in response.json()["errors"])
    assert fields == ["acuity", "start"]
    assert all(e["location"] == "body" for e in response.json()["errors"])


def test_unknown_fields_are_refused(client: TestClient, keys: Keys) -> None:
    response = client.post("/api/v1/cases", json=new_case(colour="blue"), headers=bearer(keys.cm1))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "colour"


def test_unknown_nested_fields_are_refused(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    body = {"date": "2025-03-01", "mode": "phone", "mood": "fine"}
    response = client.post("/api/v1/cases/case-a/contacts", json=body, headers=bearer(keys.cm1))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "mood"


@pytest.mark.parametrize(
    "value",
    ["2025-02-30", "99999-01-01", "0000-01-01", 10**30, -1, "", "２０２５-０１-０１"],
)
def test_impossible_dates_are_422(client: TestClient, keys: Keys, value: object) -> None:
    response = client.post("/api/v1/cases", json=new_case(start=value), headers=bearer(keys.cm1))
    assert response.status_code == 422


def test_weird_but_valid_unicode_is_kept(client: TestClient, keys: Keys) -> None:
    text = "Zo\u00eb \u202e \U0001f600 \u0645\u0631\u062d\u0628\u0627 \u200b \u0301 \ufeff"
    body = create(client, keys.cm1, id="case-u", plan_summary=text)
    assert body["case"]["plan_summary"] == text


@pytest.mark.parametrize("case_id", ["has space", "x" * 65, "a/b", "%00", "é"])
def test_path_params_that_are_not_ids_are_4xx(client: TestClient, keys: Keys, case_id: str) -> None:
    response = client.get(f"/api/v1/cases/{case_id}", headers=bearer(keys.cm1))
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 10**20}, {"offset": -1}, {"status": "sleeping"}, {"patient": "a b"}, {"open": "maybe"}],
)
def test_bad_query_parameters_are_422_in_query(client: TestClient, keys: Keys, params: dict) -> None:
    response = client.get("/api/v1/cases", params=params, headers=bearer(keys.cm1))
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "query"


def test_a_huge_if_match_is_refused(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    headers = {**bearer(keys.cm1), "If-Match": '"' + "9" * 400 + '"'}
    response = client.patch("/api/v1/cases/case-a", json={"acuity": "high"}, headers=headers)
    assert response.status_code == 422


def test_an_unparseable_if_match_never_matches(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    headers = {**bearer(keys.cm1), "If-Match": '"99999999999999999999"'}
    assert client.patch("/api/v1/cases/case-a", json={"acuity": "high"}, headers=headers).status_code == 412


def test_unknown_routes_and_methods_are_problems(client: TestClient, keys: Keys) -> None:
    missing = client.get("/api/v1/nothing", headers=bearer(keys.cm1))
    assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM)
    wrong = client.put("/api/v1/cases", headers=bearer(keys.cm1))
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == PROBLEM


def test_problem_documents_carry_the_request_id(client: TestClient, keys: Keys) -> None:
    response = client.get("/api/v1/cases/nope", headers={**bearer(keys.cm1), "X-Request-Id": "req-42"})
    assert response.headers["X-Request-Id"] == "req-42"
    assert response.json()["request_id"] == "req-42"


def test_error_messages_do_not_echo_the_rejected_value(client: TestClient, keys: Keys) -> None:
    secret = "Mrs Jane Private"
    response = client.post("/api/v1/cases", json=new_case(acuity=secret), headers=bearer(keys.cm1))
    assert response.status_code == 422
    assert secret not in response.text


def test_a_validation_error_of_the_servers_own_making_is_a_500_not_the_clients_422() -> None:
    # A model the handler builds from stored data failing is a server bug: answered as a 422 "invalid
    # fields" it blamed a GET's caller for a body it never sent, and hid the bug from the error logs.
    from fastapi import FastAPI
    from pydantic import BaseModel

    from fhir_cm.api._problems import install_problem_handlers

    class Stored(BaseModel):
        start: int

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/built")
    def built() -> Stored:
        return Stored.model_validate({"start": "not a number"})

    @app.get("/asked")
    def asked(n: int) -> dict[str, int]:
        return {"n": n}

    with TestClient(app, raise_server_exceptions=False) as client:
        ours = client.get("/built")
        theirs = client.get("/asked", params={"n": "x"})
    assert (ours.status_code, ours.headers["content-type"], ours.json()["title"]) == (500, PROBLEM, "Internal error")
    assert "not a number" not in ours.text
    assert theirs.status_code == 422 and theirs.json()["errors"][0]["field"] == "n"
