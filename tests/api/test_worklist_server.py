"""The worklist end to end over a real FHIR server (sekmet-fhir, on loopback): what a hospital holds comes in by
the API's pull and is on the case manager's worklist — a goal it wrote as due in a month, and the follow-up the
transitions tracker asks for after the discharge home it recorded."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from tests.sync.seeding import fresh_settings, seed_case

from .conftest import Keys, bearer

pytestmark = pytest.mark.server


def hospital_case() -> Case:
    """cm-1's case for a patient of its own (the server is shared by the session): a goal due at the end of May,
    and a hospital stay that ended on 06-27 with the patient sent home, no follow-up asked for yet."""
    return Case.model_validate(
        {
            "id": f"case-{uuid.uuid4().hex[:12]}",
            "programme": "health-care",
            "period": {"start": "2025-01-10"},
            "patient": {"kind": "patient", "id": f"pat-{uuid.uuid4().hex[:12]}", "name": "Ada Example"},
            "case_manager": {"kind": "practitioner", "id": "cm-1", "name": "Cass Manager"},
            "goals": [
                {"id": "goal-walk", "description": "Walk 200 m unaided", "start": "2025-02-01", "due": "2025-05-31"}
            ],
            "contacts": [{"id": "visit", "date": "2025-06-29", "mode": "face-to-face"}],
            "stays": [
                {
                    "id": "stay-1",
                    "setting": "acute-hospital",
                    "start": "2025-06-20",
                    "end": "2025-06-27",
                    "discharge_disposition": "home",
                }
            ],
        }
    )


def test_what_the_api_pulls_from_the_server_is_on_the_case_managers_worklist(
    app: FastAPI, keys: Keys, sekmet_base: str
) -> None:
    settings = fresh_settings("sqlite://", sekmet_base)
    app.state.settings = settings
    case = hospital_case()

    async def on_the_server() -> None:
        async with AsyncFhirClient(sekmet_base, enforce_capabilities=False) as raw:
            seeded = await seed_case(raw, case, settings.identifier_system)
            goal = await raw.read("Goal", seeded["Goal/goal-walk"]["id"])
            goal["target"][0]["dueDate"] = "2025-05"  # the hospital's own words: May
            await raw.update(goal)

    asyncio.run(on_the_server())
    with TestClient(app) as client:
        assert client.get("/api/v1/worklist", headers=bearer(keys.cm1)).json()["items"] == []
        pulled = client.post("/api/v1/sync/pull", json={}, headers=bearer(keys.supervisor))
        assert pulled.status_code == 200, pulled.text
        body = client.get("/api/v1/worklist", headers=bearer(keys.cm1)).json()
    items = [
        (i["case_id"], i["kind"], i["due"], i["overdue"], i["since"], i["dates_as_written"]) for i in body["items"]
    ]
    assert items == [
        (case.id, "goal-past-due", "2025-05-31", True, None, {"/due": "2025-05"}),
        # The tracker saw the discharge home and asked for a follow-up within 7 days of it.
        (case.id, "transition-follow-up", "2025-07-04", False, "2025-06-27", {}),
    ]
    follow_up = body["items"][1]
    assert (follow_up["what"], follow_up["subject"]) == (
        "Follow-up after the move from acute hospital to home",
        "referral",
    )
    assert body["items"][0]["case_manager_name"] == "Cass Manager"
