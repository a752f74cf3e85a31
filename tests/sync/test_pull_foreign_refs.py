"""A pull reads a reference as one to its own server's resource only when it is relative or absolute at
the server's base (against sekmet and HAPI, both of which keep an absolute reference as written): a
resource naming ``https://other.example/fhir/Patient/1`` is about a person of another server, never
the local ``Patient/1``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case, list_quarantine
from fhir_cm.sync import pull
from tests.mapping.builders import full_case
from tests.sync.seeding import seed_case

pytestmark = pytest.mark.server

OTHER = "https://other.example/fhir"


def a_case() -> Case:
    return full_case(
        id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"pat-{uuid.uuid4().hex[:12]}")
    )


def goal(settings: Settings, value: str, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Goal",
        "identifier": [{"system": settings.identifier_system, "value": value}],
        "lifecycleStatus": "active",
        "startDate": "2024-03-01",
        "description": {"text": "walk to the shop"},
        "subject": {"reference": subject},
    }


async def test_a_goal_of_a_patient_on_another_server_stays_out_of_the_local_patients_case(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = a_case()
    await seed_case(raw, case, settings.identifier_system)
    elsewhere = await raw.create(goal(settings, "goal-elsewhere", f"{OTHER}/Patient/{case.patient.id}"))
    here = await raw.create(goal(settings, "goal-here", f"{raw.base_url}/Patient/{case.patient.id}"))
    assert (await raw.read("Goal", elsewhere.id))["subject"]["reference"] == f"{OTHER}/Patient/{case.patient.id}"

    report = await pull(store, raw, settings)

    with store.session(read_only=True) as s:
        merged = get_case(s, case.id)
        held = list_quarantine(s, source=raw.base_url)
    assert merged is not None
    # Absolute at the server's own base: the server's Patient, the goal joins the case.
    assert {g.id for g in merged.goals} == {g.id for g in case.goals} | {"goal-here"}
    assert here.id is not None
    # Another server's Patient: set aside saying why, and naming no one.
    assert report.quarantined == 1
    (entry,) = held
    assert (entry.resource_type, entry.server_id) == ("Goal", elsewhere.id)
    assert "another server" in entry.reason and OTHER in entry.reason and case.patient.id not in entry.reason
