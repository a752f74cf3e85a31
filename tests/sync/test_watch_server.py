"""The Encounter watch against the real servers: the hospital records a journey, a pull round sees it.

As a user found it: cases pushed; the hospital then records, for the patient of an open case, its own
Encounters (no identifier of ours) — an admission still in progress, then its discharge to a skilled
nursing facility, home health, and back in hospital within 30 days. ``fhir-cm pull`` (each round of
the worker) must record every move, flag the readmission and queue the follow-up — without being
told which patient — and a second round must read nothing new. A case enrolled later gets its
patient's past Encounters once.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from typer.testing import CliRunner

from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.domain import CareSetting, Party, ReferralKind
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.jobs import run_pull
from fhir_cm.store import Store, get_case, list_transitions
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server


async def _moves(store: Store, case_id: str) -> list[tuple[CareSetting, CareSetting, str, bool]]:
    with store.session(read_only=True) as s:
        return [(t.from_setting, t.to_setting, t.date.isoformat(), t.readmission) for t in list_transitions(s, case_id)]


async def test_a_pull_round_sees_what_the_hospital_records_for_any_open_case(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    tags = [uuid.uuid4().hex[:10] for _ in range(3)]
    cases = [
        await enrol(store, raw, settings, tag, case_manager=Party(kind="practitioner", id=f"cm-{tag}")) for tag in tags
    ]
    first = await run_pull(store, settings)
    assert first.watch is not None and sorted(first.watch.seeded) == sorted(c.id for c in cases)

    # The hospital admits the second case's patient: an Encounter in progress, written by the EHR.
    tag, case = tags[1], cases[1]
    patient = f"pat-{tag}"
    hospital, snf, agency = f"hosp-{tag}", f"snf-{tag}", f"hha-{tag}"
    await put_organisations(raw, hospital, snf, agency)
    admission = encounter(patient, "IMP", "2024-03-01", "2024-03-05", hospital)
    admission["status"] = "in-progress"
    admission["period"] = {"start": "2024-03-01"}
    admitted = await raw.create(admission)

    second = await run_pull(store, settings)
    assert second.watch is not None and second.watch.touched == [case.id]
    assert second.transitions.stays_added == 1 and second.transitions.new_transitions == 0

    # The same Encounter ends (a status and period change, no new Encounter) and the journey goes on.
    discharged = {
        **admission,
        "id": admitted.id,
        "status": "finished",
        "period": {"start": "2024-03-01", "end": "2024-03-05"},
        "hospitalization": encounter(patient, "IMP", "", "", hospital, disposition="snf")["hospitalization"],
    }
    await raw.update(discharged)
    for enc in (
        encounter(patient, "NONAC", "2024-03-05", "2024-03-20", snf, role="SNF", disposition="oth"),
        encounter(patient, "HH", "2024-03-20", "2024-03-31", agency),
        encounter(patient, "IMP", "2024-03-31", "2024-04-03", hospital, disposition="home"),
    ):
        await raw.create(enc)

    third = await run_pull(store, settings)
    assert third.watch is not None and third.watch.touched == [case.id] and third.watch.batched is True
    assert await _moves(store, case.id) == [
        (CareSetting.ACUTE_HOSPITAL, CareSetting.SKILLED_NURSING, "2024-03-05", False),
        (CareSetting.SKILLED_NURSING, CareSetting.HOME_HEALTH, "2024-03-20", False),
        (CareSetting.HOME_HEALTH, CareSetting.ACUTE_HOSPITAL, "2024-03-31", True),
        (CareSetting.ACUTE_HOSPITAL, CareSetting.HOME, "2024-04-03", False),
    ]
    for other in (cases[0], cases[2]):
        assert await _moves(store, other.id) == []
    with store.session(read_only=True) as s:
        tracked = get_case(s, case.id)
    assert tracked is not None
    follow_ups = [r for r in tracked.referrals if r.kind is ReferralKind.FOLLOW_UP]
    assert {r.for_stay for r in follow_ups} == {
        admitted.id,
        next(s.id for s in tracked.stays if s.start.isoformat() == "2024-03-31"),
    }

    # The discharges were acted on in the same round: the follow-ups are on the server already, and the
    # time from reading the discharge to the server holding its follow-up is in /metrics.
    assert third.follow_ups is not None and third.follow_ups.on_server == [case.id]
    for referral in follow_ups:
        found = (
            await raw.search("ServiceRequest")
            .where("identifier", f"{settings.identifier_system}|{referral.id}")
            .fetch_all()
        )
        assert len(found) == 1
    # Each move out of the hospital or the SNF got its transfer summary on the server, for the receiving provider.
    assert third.document_failures == {} and len(third.documents) == 3
    # The discharge rule ran for each of those moves (the one CDS Hooks' encounter-discharge applies).
    plans = [(p.case_id, p.move, p.from_setting, p.to_setting) for p in third.transition_plans]
    assert plans == [
        (case.id, 1, CareSetting.ACUTE_HOSPITAL, CareSetting.SKILLED_NURSING),
        (case.id, 2, CareSetting.SKILLED_NURSING, CareSetting.HOME_HEALTH),
        (case.id, 3, CareSetting.ACUTE_HOSPITAL, CareSetting.HOME),
    ]
    refs = (
        await raw.search("DocumentReference")
        .where("patient", f"Patient/{patient}")
        .where("type", "http://loinc.org|18761-7")
        .fetch_all()
    )
    assert sorted(r["id"] for r in refs) == sorted(d.document_reference_id for d in third.documents)
    with TestClient(create_app(settings, store=store)) as api:
        metrics = api.get("/metrics").text
    assert "fhir_cm_discharge_follow_up_seconds_count 2.0" in metrics
    assert 'fhir_cm_discharge_follow_up_seconds_bucket{le="+Inf"} 2.0' in metrics

    # A round with nothing new on the server reads nothing new and tracks nothing.
    quiet = await run_pull(store, settings)
    assert quiet.watch is not None and (quiet.watch.encounters, quiet.watch.touched) == (0, [])
    assert quiet.transitions.new_transitions == 0


async def test_a_case_enrolled_later_gets_its_patients_past_encounters_once(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    early = await enrol(store, raw, settings, uuid.uuid4().hex[:10])
    await run_pull(store, settings)  # the watch knows the early case from now on
    tag = uuid.uuid4().hex[:10]
    patient, hospital = f"pat-{tag}", f"hosp-{tag}"
    await put_organisations(raw, hospital)
    await raw.update({"resourceType": "Patient", "id": patient, "active": True}, versioned=False)
    await raw.create(encounter(patient, "IMP", "2024-01-10", "2024-01-14", hospital, disposition="home"))
    late = await enrol(store, raw, settings, tag)  # enrolled after the hospital stay was recorded

    round_ = await run_pull(store, settings)
    assert round_.watch is not None and round_.watch.seeded == [late.id]
    assert round_.transitions.stays_added == 1
    assert await _moves(store, late.id) == [(CareSetting.ACUTE_HOSPITAL, CareSetting.HOME, "2024-01-14", False)]
    again = await run_pull(store, settings)
    assert again.watch is not None and (again.watch.seeded, again.watch.touched) == ([], [])
    assert early.id not in (round_.watch.touched or [])


def test_the_pull_command_says_what_the_watch_saw(settings: Settings, fhir_server: str) -> None:
    env: dict[str, Any] = {
        "FHIR_CM_DATABASE_URL": settings.database_url,
        "FHIR_CM_IDENTIFIER_SYSTEM": settings.identifier_system,
    }
    result = CliRunner().invoke(app, ["pull", "--fhir-base", fhir_server], env=env)
    assert result.exit_code == 0, result.output
    assert "watched the Encounters of 0 patients of open cases" in result.output
