"""A 409 that is no version conflict, from a real HAPI FHIR server, through the push.

HAPI answers 409 for more than a stale ``If-Match``: here a unique index (a ``SearchParameter``
marked ``sp-unique``: one EpisodeOfCare per patient, as a hospital may enforce) refuses the case's
EpisodeOfCare because another system's episode already holds the patient, with ``HAPI-1093``. The
push sends no ``If-Match`` for a create, so no version can be stale: the case must fail for a person
to look at, with the server's reason in the push report, in ``fhir-cm push`` and in
``/api/v1/sync/status`` and ``/health`` — not be re-read, "merged" and sent again round after round as a version
conflict that never says why.

The unique index only covers patients whose id starts with ``one-episode-`` (its expression says
so), so the other tests sharing the session's HAPI server are not bound by it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_cm.cli import app as cli_app
from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import OutboxStatus, Store, list_outbox, open_store, save_case
from fhir_cm.synthetic import generate_cases
from tests.servers import RunningServer
from tests.sync.seeding import seed_parties

from .conftest import Keys, bearer

pytestmark = pytest.mark.server

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
PREFIX = "one-episode-"
SEARCH_PARAMETERS = [
    {
        "resourceType": "SearchParameter",
        "id": "fhircm-test-episode-patient",
        "url": "https://fhir-cm.org/fhir/test/SearchParameter/fhircm-test-episode-patient",
        "name": "episodePatient",
        "status": "active",
        "description": "The patient of an episode, for the test patients only",
        "code": "fhircm-test-patient",
        "base": ["EpisodeOfCare"],
        "type": "reference",
        "expression": f"EpisodeOfCare.patient.where(reference.startsWith('Patient/{PREFIX}'))",
        "target": ["Patient"],
    },
    {
        "resourceType": "SearchParameter",
        "id": "fhircm-test-one-episode",
        "url": "https://fhir-cm.org/fhir/test/SearchParameter/fhircm-test-one-episode",
        "extension": [{"url": "http://hapifhir.io/fhir/StructureDefinition/sp-unique", "valueBoolean": True}],
        "name": "oneEpisode",
        "status": "active",
        "description": "One episode of care per (test) patient",
        "code": "fhircm-test-one-episode",
        "base": ["EpisodeOfCare"],
        "type": "composite",
        "expression": "EpisodeOfCare",
        "component": [{"definition": "SearchParameter/fhircm-test-episode-patient", "expression": "EpisodeOfCare"}],
    },
]


@pytest.fixture(scope="module")
def hapi(hapi_r4: RunningServer) -> str:
    """HAPI, holding the unique index."""
    for parameter in SEARCH_PARAMETERS:
        answer = httpx.put(
            f"{hapi_r4.base_url}/SearchParameter/{parameter['id']}", json=parameter, headers=FHIR_JSON, timeout=60
        )
        assert answer.status_code in (200, 201), answer.text
    return hapi_r4.base_url


@pytest.fixture
def case(hapi: str) -> Case:
    """A case whose patient already has an EpisodeOfCare on the server, written by another system."""
    generated = next(iter(generate_cases(1, seed=409)))
    patient = generated.patient.model_copy(update={"id": f"{PREFIX}{uuid.uuid4().hex[:12]}"})
    case = generated.model_copy(update={"patient": patient})

    async def seed() -> None:
        async with AsyncFhirClient(hapi, enforce_capabilities=False) as client:
            await seed_parties(client, case)
            theirs = {
                "resourceType": "EpisodeOfCare",
                "status": "active",
                "patient": {"reference": f"Patient/{patient.id}"},
            }
            await client.create(theirs)

    asyncio.run(seed())
    return case


@pytest.fixture
def env(tmp_path: Path, hapi: str) -> dict[str, str]:
    return {
        "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "FHIR_CM_FHIR_BASE": hapi,
        "FHIR_CM_IDENTIFIER_SYSTEM": f"urn:fhir-cm:test:{uuid.uuid4().hex}",
    }


def test_push_fails_the_case_with_the_servers_reason_and_keeps_its_row(
    case: Case, env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "case.json"
    file.write_text(case.model_dump_json())

    result = CliRunner().invoke(cli_app, ["push", str(file), "--json"], env=env)

    assert result.exit_code == 1, result.output  # failed for a person to look at: not 75, "run again later"
    [failure] = json.loads(result.stdout)["failures"]
    assert failure["permanent"] is True
    server: dict[str, Any] = failure["server"]
    assert (server["status"], server["message_code"]) == (409, "HAPI-1093")
    assert "duplicate unique index" in server["diagnostics"]
    assert failure["reason"].startswith("the server refused the case: HTTP 409 processing HAPI-1093:")
    assert "version conflict" not in result.output
    assert "HAPI-1093" in result.stderr and "duplicate unique index" in result.stderr
    assert case.patient.id not in result.output  # the query quoting the patient is cut
    with open_store(env["FHIR_CM_DATABASE_URL"]) as store, store.session(read_only=True) as s:
        [row] = list_outbox(s)
    assert row.status is OutboxStatus.FAILED and row.last_error == failure["reason"]


def test_the_sync_status_and_health_show_the_refused_case_with_the_servers_reason(
    app: FastAPI, keys: Keys, api_store: Store, case: Case, env: dict[str, str]
) -> None:
    app.state.settings = Settings(
        database_url="sqlite://", fhir_base=env["FHIR_CM_FHIR_BASE"], identifier_system=env["FHIR_CM_IDENTIFIER_SYSTEM"]
    )
    with api_store.session() as s:
        save_case(s, case)
    with TestClient(app) as client:
        pushed = client.post("/api/v1/sync/push", headers=bearer(keys.supervisor))
        assert pushed.status_code == 200, pushed.text
        [failure] = pushed.json()["report"]["failures"]
        assert failure["permanent"] is True and failure["server"]["message_code"] == "HAPI-1093"
        status = client.get("/api/v1/sync/status", headers=bearer(keys.supervisor)).json()
        health = client.get("/api/v1/sync/health", headers=bearer(keys.supervisor)).json()

    assert status["outbox"]["failed"] == 1 and status["outbox"]["pending"] == 0
    [shown] = health["failed"]
    assert shown["case_id"] == case.id
    assert "HTTP 409 processing HAPI-1093" in shown["reason"] and "duplicate unique index" in shown["reason"]
