"""A smoke run of the API on the real PostgreSQL store (skipped, or failed in CI, where there is none)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.store import ApiRole, create_api_key, open_store
from tests.pg import temporary_database

from .conftest import bearer, new_case

pytestmark = pytest.mark.postgres


def test_the_case_cycle_on_postgresql() -> None:
    with temporary_database() as url, open_store(url) as store:
        with store.session() as s:
            _, key = create_api_key(s, name="cm", role=ApiRole.CASE_MANAGER, practitioner_id="cm-1")
        app = create_app(Settings(database_url=url), store=store, clock=lambda: dt.date(2025, 6, 30))
        with TestClient(app) as client:
            h = bearer(key)
            assert client.post("/api/v1/cases", json=new_case(id="pg-1"), headers=h).status_code == 201
            goal = {"id": "g1", "description": "walk", "due": "2025-05-01"}
            assert client.post("/api/v1/cases/pg-1/goals", json=goal, headers=h).status_code == 201
            stale = client.patch("/api/v1/cases/pg-1", json={"acuity": "high"}, headers={**h, "If-Match": '"1"'})
            assert stale.status_code == 412
            closed = client.post("/api/v1/cases/pg-1/close", json={"reason": "done"}, headers=h)
            assert (closed.status_code, closed.json()["revision"]) == (200, 3)
            assert (
                client.get("/api/v1/cases", params={"status": "closed"}, headers=h).json()["items"][0]["case"]["id"]
                == "pg-1"
            )
            assert client.get("/api/v1/sync/status", headers=h).json()["outbox"]["pending"] == 1
            assert client.get("/readyz").status_code == 200
            bad = client.get("/api/v1/cases", params={"patient": "a\x00b"}, headers=h)
            assert bad.status_code == 422
