"""HEAD wherever GET is served (RFC 9110, 9.3.2): GET's status and header fields, no body, the same auth."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from fhir_cm.api._head import with_head
from fhir_cm.store import Store, save_case
from fhir_cm.synthetic import generate_cases

from .conftest import Keys, bearer, create


class _Recording:
    """The app, noting every body byte it sends (the test client drops a HEAD answer's body itself)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.sent: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def noted(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.sent.append(bytes(message.get("body", b"")))
            await send(message)

        await self.app(scope, receive, noted)


@pytest.fixture
def recording(app: FastAPI) -> Iterator[tuple[TestClient, _Recording]]:
    wrapped = _Recording(app)
    with TestClient(wrapped) as c:
        yield c, wrapped


def _fields(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != "x-request-id"}


def test_head_answers_as_get_does_without_a_body(
    recording: tuple[TestClient, _Recording], keys: Keys, api_store: Store
) -> None:
    client, app = recording
    [case] = generate_cases(1, 5)
    with api_store.session() as s:
        save_case(s, case)
    supervisor, service = bearer(keys.supervisor), bearer(keys.service)
    for path, headers in [
        (f"/api/v1/cases/{case.id}", supervisor),
        (f"/api/v1/cases/{case.id}/goals", supervisor),
        ("/api/v1/cases?limit=5", supervisor),
        ("/api/v1/caseload", supervisor),
        ("/api/v1/cases/nobody", supervisor),  # a 404 is GET's answer too
        (f"/fhir/EpisodeOfCare/{case.id}", service),
        ("/fhir/Goal?_count=2", service),
        ("/fhir/metadata", {}),
        ("/fhir/Nope/1", service),
        ("/healthz", {}),
        ("/console", {}),
        ("/console/", {}),
        ("/openapi.json", {}),
    ]:
        get = client.get(path, headers=headers, follow_redirects=False)
        app.sent.clear()
        head = client.head(path, headers=headers, follow_redirects=False)
        assert head.status_code == get.status_code, path
        assert _fields(dict(head.headers)) == _fields(dict(get.headers)), path
        assert b"".join(app.sent) == b"", path
        if get.content:
            assert int(head.headers["content-length"]) == len(get.content), path
    read = client.head(f"/fhir/EpisodeOfCare/{case.id}", headers=service)
    assert read.headers["etag"].startswith('W/"') and read.headers["content-type"].startswith("application/fhir+json")
    assert client.head(f"/api/v1/cases/{case.id}", headers=supervisor).headers["etag"] == '"1"'


def test_head_needs_what_get_needs(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-h")
    nobody = client.head("/api/v1/cases/case-h")
    assert nobody.status_code == 401 and nobody.headers["www-authenticate"].startswith("Bearer")
    assert client.head("/api/v1/cases/case-h", headers=bearer(keys.cm2)).status_code == 404  # not theirs
    assert client.head("/fhir/Goal", headers=bearer(keys.cm1)).status_code == 403
    assert client.head("/fhir/Goal").status_code == 401


def test_head_where_no_get_is_served_is_405_without_head_in_allow(client: TestClient, keys: Keys) -> None:
    response = client.head("/api/v1/sync/push", headers=bearer(keys.supervisor))
    assert response.status_code == 405 and response.headers["allow"] == "POST"


def test_every_405_that_allows_get_allows_head(client: TestClient, keys: Keys) -> None:
    for method, path, allowed in [
        ("DELETE", "/api/v1/cases/some-case", "GET, HEAD, PATCH"),
        ("PUT", "/api/v1/cases", "GET, HEAD, POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("PUT", "/fhir/Goal/x", "GET, HEAD"),  # the façade's own read-only answer
        ("DELETE", "/fhir/metadata", "GET, HEAD"),
    ]:
        response = client.request(method, path, headers=bearer(keys.service))
        assert response.status_code == 405 and response.headers["allow"] == allowed, path


def test_a_head_is_logged_and_counted_as_head_under_the_route_template(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-h")
    assert client.head("/api/v1/cases/case-h", headers=bearer(keys.cm1)).status_code == 200
    metrics = client.get("/metrics").text
    assert re.search(
        r'fhir_cm_http_requests_total\{method="HEAD",route="/api/v1/cases/\{case_id\}",status="200"\}', metrics
    )


def test_the_openapi_document_lists_get_and_says_head_goes_with_it(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert not any("head" in item for item in document["paths"].values())
    assert "HEAD" in document["info"]["description"]


def test_allow_gains_head_only_beside_get() -> None:
    assert with_head("GET") == "GET, HEAD"
    assert with_head("PATCH, GET") == "GET, HEAD, PATCH"
    assert with_head("GET, HEAD") == "GET, HEAD"
    assert with_head("POST") == "POST"
