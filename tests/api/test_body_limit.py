"""Request bodies past FHIR_CM_MAX_BODY_BYTES are refused with 413 in the API's own error shapes,
before the rest is read: also where the body comes before the credentials (CDS Hooks, notifications)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.store import open_store

LIMIT = 2048


@pytest.fixture
def small(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        app = create_app(Settings(database_url=url, max_body_bytes=LIMIT), store=store)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client


@pytest.mark.parametrize("path", ["/api/v1/cases", "/cds-services/fhir-cm-patient-view", "/notifications/sub-1"])
def test_a_body_declared_too_large_is_a_413_problem_without_credentials(small: TestClient, path: str) -> None:
    response = small.post(path, content=b"{" + b" " * LIMIT + b"}", headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == f"the request body is larger than {LIMIT} bytes"
    assert response.headers["x-request-id"]


def test_under_fhir_it_is_an_operation_outcome(small: TestClient) -> None:
    response = small.post("/fhir/CarePlan/_search", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413 and response.headers["content-type"].startswith("application/fhir+json")
    assert response.json()["issue"][0]["code"] == "too-costly"


def test_a_body_sent_in_chunks_is_counted_as_it_comes(small: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b" " * (LIMIT // 2)

    response = small.post(
        "/cds-services/fhir-cm-patient-view", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"


def test_a_body_within_the_bound_goes_on_to_the_credentials(small: TestClient) -> None:
    assert small.post("/api/v1/cases", content=b"{" + b" " * (LIMIT - 2) + b"}").status_code == 401
