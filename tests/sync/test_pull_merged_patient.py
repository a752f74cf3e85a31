"""``pull --patient`` given a record the hospital merged into another, against the real R4 servers.

An integration engineer pulls "everything about this patient" by the id they know — often the one
the case was enrolled with. Once the hospital merged that record into a survivor, what it records
from then on names the survivor: pulling only the retired id brings none of it, and says nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.domain import Need
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.jobs import run_pull
from fhir_cm.mapping import case_to_bundle
from fhir_cm.store import Store, get_case, get_ledger
from tests.sync.test_transitions_server import enrol

pytestmark = pytest.mark.server


async def _merged_with_a_condition_under_the_survivor(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> tuple[str, str, str]:
    """A pushed case on ``pat-<tag>``, that record merged into ``pat-<tag>-2`` (``replaced-by``), and a
    need's Condition naming the survivor since: ``(case id, survivor, Condition id)``."""
    case = await enrol(store, raw, settings, uuid.uuid4().hex[:10])
    survivor = f"{case.patient.id}-2"
    await raw.update({"resourceType": "Patient", "id": survivor, "active": True}, versioned=False)
    link = [{"other": {"reference": f"Patient/{survivor}"}, "type": "replaced-by"}]
    await raw.update({"resourceType": "Patient", "id": case.patient.id, "active": False, "link": link}, versioned=False)
    # A need added since (by another store of the programme): the Condition names the survivor, as
    # everything does after a merge that moves the references (HAPI's $merge).
    need = Need(id=f"need-{case.id}", domain="functional", finding="Cannot climb stairs", recorded=dt.date(2024, 3, 1))
    bundle = case_to_bundle(case.model_copy(update={"needs": [need]}), "R4", settings.identifier_system)
    [condition] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition"]
    condition["subject"] = {"reference": f"Patient/{survivor}"}
    return case.id, survivor, (await raw.create(condition)).id


async def test_pulling_a_merged_patient_pulls_the_survivors_record_too(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case_id, survivor, condition = await _merged_with_a_condition_under_the_survivor(store, raw, settings)
    with store.session(read_only=True) as s:
        before = get_case(s, case_id)
    assert before is not None

    report = await run_pull(store, settings, patient=before.patient.id)

    assert report.pull.merged_into == survivor, report.pull
    with store.session(read_only=True) as s:
        after = get_case(s, case_id)
        entry = get_ledger(s, raw.base_url, "Patient", before.patient.id)
    assert after is not None and after.patient.id == before.patient.id  # the case keeps the EHR's party
    assert len(after.needs) == len(before.needs) + 1, report.pull
    assert entry is not None and entry.server_id == survivor


async def test_the_pull_command_says_the_record_was_merged_and_into_which(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case_id, survivor, _ = await _merged_with_a_condition_under_the_survivor(store, raw, settings)
    patient = case_id.replace("case-", "pat-", 1)
    env = {
        "FHIR_CM_DATABASE_URL": settings.database_url,
        "FHIR_CM_FHIR_BASE": raw.base_url,
        "FHIR_CM_IDENTIFIER_SYSTEM": settings.identifier_system,
    }
    result = await asyncio.to_thread(CliRunner().invoke, app, ["pull", "--patient", patient], env=env)

    assert result.exit_code == 0, result.output
    assert f"Patient/{patient} was merged into Patient/{survivor}" in result.stderr
