"""Sync triggered through the API against the real FHIR test server (sekmet-fhir, on loopback)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_cm.cli import app as cli_app
from fhir_cm.config import Settings
from fhir_cm.domain import GoalAchievement
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, open_store
from tests.sync.seeding import fresh_settings, seed_case
from tests.sync.test_pull_server import a_case, stored
from tests.sync.test_resolve_server import a_conflict, achievement

from .conftest import Keys, bearer, create

pytestmark = pytest.mark.server


def test_a_case_created_through_the_api_is_pushed_by_the_push_route(app: FastAPI, keys: Keys, fhir_server: str) -> None:
    app.state.settings = Settings(
        database_url="sqlite://", fhir_base=fhir_server, identifier_system=f"urn:fhir-cm:test:{uuid.uuid4().hex}"
    )
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


def test_resolving_keep_local_through_the_api_reapplies_the_local_value_and_the_push_sends_it(
    app: FastAPI, keys: Keys, api_store: Store, fhir_server: str
) -> None:
    """The API settles a conflict as `fhir-cm conflicts resolve ID --keep local` does (issue 9): the
    case gets the local value back and is queued, and the push route sends it over the server's edit."""
    settings = fresh_settings("sqlite://", fhir_server)
    app.state.settings = settings

    async def conflict() -> tuple[str, str, int, dict[str, Any]]:
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
            case_id, goal_id, conflict_id = await a_conflict(api_store, raw, settings)
            return case_id, goal_id, conflict_id, await raw.read("Goal", goal_id)

    case_id, goal_id, conflict_id, before = asyncio.run(conflict())
    assert achievement(before) == "achieved"
    assert {g.id: g.achievement for g in stored(api_store, case_id).goals}["goal-1"] is GoalAchievement.ACHIEVED

    with TestClient(app) as client:
        done = client.post(
            f"/api/v1/sync/conflicts/{conflict_id}/resolve",
            json={"resolution": "local"},
            headers=bearer(keys.supervisor),
        )
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["resolution"]) == ("resolved", "local")
        # The local value is back in the case, and the case is queued for the next push.
        assert {g.id: g.achievement for g in stored(api_store, case_id).goals}["goal-1"] is GoalAchievement.IMPROVING
        status = client.get("/api/v1/sync/status", headers=bearer(keys.supervisor)).json()
        assert status["outbox"]["pending"] >= 1
        pushed = client.post("/api/v1/sync/push", headers=bearer(keys.supervisor))
        assert pushed.status_code == 200, pushed.text
        report = pushed.json()["report"]
        assert (report["failed"], report["conflicts"], report["created"], report["updated"]) == (0, 0, 0, 1)

    async def read_back() -> dict[str, Any]:
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
            return await raw.read("Goal", goal_id)

    after = asyncio.run(read_back())
    assert achievement(after) == "improving"
    assert int(after["meta"]["versionId"]) == int(before["meta"]["versionId"]) + 1  # If-Match over that copy


def test_the_api_pull_gets_what_the_cli_pull_gets(
    app: FastAPI, keys: Keys, api_store: Store, fhir_server: str, tmp_path: Path
) -> None:
    """Both pulls read with the same client (issue 9): types the CapabilityStatement leaves out are
    still asked for — sekmet serves Goal and CareTeam without declaring them."""
    settings = fresh_settings("sqlite://", fhir_server)
    app.state.settings = settings
    case = a_case()

    async def seed() -> None:
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
            await seed_case(raw, case, settings.identifier_system)

    asyncio.run(seed())
    env = {
        "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "FHIR_CM_IDENTIFIER_SYSTEM": settings.identifier_system,
    }
    # A pull that records a hospital discharge pushes its follow-up at once (issue 11): a first pull
    # elsewhere does that, so the two pulls compared below read the same server.
    first = CliRunner().invoke(
        cli_app,
        ["pull", "--fhir-base", fhir_server],
        env={**env, "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'first.db'}"},
    )
    assert first.exit_code == 0, first.output
    with TestClient(app) as client:
        response = client.post("/api/v1/sync/pull", json={}, headers=bearer(keys.supervisor))
    assert response.status_code == 200, response.text
    through_api = response.json()["report"]

    result = CliRunner().invoke(cli_app, ["pull", "--fhir-base", fhir_server, "--json"], env=env)
    assert result.exit_code == 0, result.output
    through_cli = json.loads(result.stdout)

    assert through_api["pull"]["skipped_types"] == through_cli["pull"]["skipped_types"] == {}
    for count in ("fetched", "new_cases", "quarantined", "still_quarantined", "conflicts"):
        assert through_api["pull"][count] == through_cli["pull"][count], count
    assert through_api["transitions"]["new_transitions"] == through_cli["transitions"]["new_transitions"]
    pulled = stored(api_store, case.id)
    assert pulled.goals == case.goals and pulled.goals  # the types the statement leaves out came in
    assert {m.id for m in case.team} <= {m.id for m in pulled.team}  # (the tracker may add members)
    with open_store(env["FHIR_CM_DATABASE_URL"]) as cli_store:
        assert stored(cli_store, case.id) == pulled
