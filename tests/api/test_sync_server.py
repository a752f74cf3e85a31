"""Sync triggered through the API against the real FHIR test server (sekmet-fhir, on loopback)."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fhir_cm.config import Settings

from .conftest import Keys, bearer, create

pytestmark = pytest.mark.server


def test_a_case_created_through_the_api_is_pushed_by_the_push_route(app: FastAPI, keys: Keys, fhir_server: str) -> None:
    app.state.settings = Settings(database_url="sqlite://", fhir_base=fhir_server,
                                  identifier_system=f"urn:fhir-cm:test:{uuid.uuid4().hex}")
    with TestClient(app) as client:
        create(client, keys.supervisor, id="pushed-1")
        assert client.get("/readyz").json()["checks"]["fhir"] == "ok"
        response = client.post("/api/v1/sync/push", headers=bearer(keys.supervisor))
        assert response.status_code == 200, response.text
        report = response.json()["report"]
        assert (report["cases"], report["failed"]) == (1, 0) and report["created"] >= 1
        status = client.get("/api/v1/sync/status", headers=bearer(keys.supervisor)).json()
        assert (status["outbox"]["pending"], status["outbox"]["done"]) == (0, 1)
        again = client.post("/api/v1/sync/push", headers=bearer(keys.supervisor)).json()["report"]
        assert (again["created"], again["cases"]) == (0, 0)
        pulled = client.post("/api/v1/sync/pull", json={}, headers=bearer(keys.supervisor))
        assert pulled.status_code == 200, pulled.text
