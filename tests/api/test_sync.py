"""Sync control: triggers (409 without a server, the use-case layer's jobs), status, conflicts, quarantine."""

from __future__ import annotations

import gc
import warnings
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

import fhir_cm.jobs as jobs
from fhir_cm.config import Settings
from fhir_cm.store import Store, add_conflict, add_quarantine

from .conftest import Keys, bearer, create


class FakeReport(BaseModel):
    created: int
    updated: int
    failed: int


@pytest.fixture
def fhir_app(app: FastAPI) -> FastAPI:
    """The app with a FHIR server configured (never contacted: the jobs are fakes)."""
    app.state.settings = Settings(database_url="sqlite://", fhir_base="http://127.0.0.1:9/fhir")
    return app


def test_the_sync_routes_never_answer_501(client: TestClient, keys: Keys) -> None:
    """The routes call the use-case layer directly: there is no "not landed yet" answer any more."""
    status = client.get("/api/v1/sync/status", headers=bearer(keys.supervisor)).json()
    assert (status["push_available"], status["pull_available"]) == (True, True)
    for route in ("/api/v1/sync/push", "/api/v1/sync/pull"):
        assert client.post(route, headers=bearer(keys.supervisor)).status_code != 501


def test_push_without_a_fhir_server_is_409(client: TestClient, keys: Keys) -> None:
    response = client.post("/api/v1/sync/push", headers=bearer(keys.supervisor))
    assert response.status_code == 409
    assert "FHIR_CM_FHIR_BASE" in response.json()["detail"]


def test_push_runs_the_sync_layer_and_counts_the_outcome(
    fhir_app: FastAPI, keys: Keys, api_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    async def run_push(store: Store, settings: Settings, **_options: Any) -> FakeReport:
        calls.append((store, settings.fhir_base))
        return FakeReport(created=3, updated=1, failed=0)

    monkeypatch.setattr(jobs, "run_push", run_push)
    with TestClient(fhir_app) as client:
        response = client.post("/api/v1/sync/push", headers=bearer(keys.supervisor))
        assert response.status_code == 200, response.text
        assert response.json() == {"operation": "push", "report": {"created": 3, "updated": 1, "failed": 0}}
        metrics = client.get("/metrics").text
    assert calls == [(api_store, "http://127.0.0.1:9/fhir")]
    assert 'fhir_cm_sync_runs_total{operation="push",outcome="ok"} 1.0' in metrics
    assert 'fhir_cm_sync_items_total{operation="push",result="created"} 3.0' in metrics


def test_pull_passes_since_and_patient(fhir_app: FastAPI, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def run_pull(store: Store, settings: Settings, **options: Any) -> dict[str, Any]:
        seen.update(options)
        return {"pull": {"fetched": 2}, "transitions": {"recorded": 1}}

    monkeypatch.setattr(jobs, "run_pull", run_pull)
    with TestClient(fhir_app) as client:
        body = {"since": "2025-01-01T00:00:00Z", "patient": "p-1"}
        response = client.post("/api/v1/sync/pull", json=body, headers=bearer(keys.supervisor))
        metrics = client.get("/metrics").text
    assert response.status_code == 200
    assert seen["patient"] == "p-1" and seen["since"].year == 2025
    assert 'fhir_cm_sync_items_total{operation="pull",result="pull.fetched"} 2.0' in metrics


def test_a_failing_fhir_server_is_502(fhir_app: FastAPI, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    from fhir_cm.fhir import TransientError

    async def run_push(*_args: Any, **_kwargs: Any) -> None:
        raise TransientError("the server answered 503: down for maintenance until 02:00\nmore")

    monkeypatch.setattr(jobs, "run_push", run_push)
    with TestClient(fhir_app) as client:
        response = client.post("/api/v1/sync/push", headers=bearer(keys.supervisor))
        metrics = client.get("/metrics").text
    assert response.status_code == 502
    assert response.json()["detail"] == (  # the server's reason, not only an error class
        "the FHIR server failed during push: the server answered 503: down for maintenance until 02:00"
    )
    assert 'fhir_cm_sync_runs_total{operation="push",outcome="failed"} 1.0' in metrics


def test_status_counts_the_outbox(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    create(client, keys.cm1, id="case-b")
    body = client.get("/api/v1/sync/status", headers=bearer(keys.cm1)).json()
    assert body["outbox"]["pending"] == 2
    assert (body["open_conflicts"], body["quarantined"], body["fhir_base_configured"]) == (0, 0, False)


def _conflict(store: Store, case_id: str) -> int:
    with store.session() as s:
        return add_conflict(s, case_id, "Goal", "g1", local={"a": 1}, server={"a": 2}, fields=["achievementStatus"])


def test_conflicts_are_listed_for_visible_cases_and_resolved(client: TestClient, keys: Keys, api_store: Store) -> None:
    create(client, keys.supervisor, id="mine")
    create(client, keys.supervisor, id="theirs", case_manager={"kind": "practitioner", "id": "cm-2"})
    mine, theirs = _conflict(api_store, "mine"), _conflict(api_store, "theirs")
    listed = client.get("/api/v1/sync/conflicts", headers=bearer(keys.cm1)).json()
    assert [c["id"] for c in listed] == [mine]
    hidden = client.post(
        f"/api/v1/sync/conflicts/{theirs}/resolve", json={"resolution": "local"}, headers=bearer(keys.cm1)
    )
    assert hidden.status_code == 404
    done = client.post(
        f"/api/v1/sync/conflicts/{mine}/resolve", json={"resolution": "server"}, headers=bearer(keys.cm1)
    )
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["resolution"]) == ("resolved", "server")
    assert client.get("/api/v1/sync/conflicts", headers=bearer(keys.cm1)).json() == []
    again = client.post(
        f"/api/v1/sync/conflicts/{mine}/resolve", json={"resolution": "server"}, headers=bearer(keys.cm1)
    )
    assert again.status_code == 404


def test_quarantine_lists_what_a_pull_set_aside(client: TestClient, keys: Keys, api_store: Store) -> None:
    with api_store.session() as s:
        add_quarantine(s, source="http://server/fhir", raw={"resourceType": "Goal", "id": "x"}, reason="bad status")
    body = client.get("/api/v1/sync/quarantine", headers=bearer(keys.supervisor)).json()
    assert [(q["resource_type"], q["reason"]) for q in body] == [("Goal", "bad status")]


def test_a_placement_without_a_fhir_server_is_409_and_starts_no_job(client: TestClient, keys: Keys) -> None:
    """The job is started only once a server is known to be there (it was made and left unawaited)."""
    create(client, keys.supervisor, id="case-placed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = client.post(
            "/api/v1/cases/case-placed/placements",
            json={"setting": "skilled-nursing", "candidates": ["org-1"]},
            headers=bearer(keys.supervisor),
        )
        gc.collect()
    assert response.status_code == 409 and "FHIR_CM_FHIR_BASE" in response.json()["detail"]
    assert not [w for w in caught if "never awaited" in str(w.message)]
