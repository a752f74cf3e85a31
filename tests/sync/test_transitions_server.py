"""The transitions tracker against the real R4 server: a seeded Encounter journey, recorded and acted on.

A hospital system (not fhir-cm: no business identifier of ours) records the patient's journey:
hospital → skilled nursing → home health → back in hospital 26 days after the first discharge →
home. The tracker must record four moves, flag the readmission, ask for a follow-up after each
hospital discharge and add the receiving providers to the care team — on the server once pushed —
and the case's EpisodeOfCare must tell a hospital where the person is now (and its status history).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import (
    CareSetting,
    Case,
    DischargeDisposition,
    Party,
    Period,
    ReferralKind,
    StatusChange,
)
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping._codes import EXT_CURRENT_SETTING
from fhir_cm.store import Store, get_case, get_ledger, list_transitions
from fhir_cm.sync import push_cases, push_pending, track_transitions
from fhir_cm.terminology import system_url
from tests.sync.seeding import put_organisations

pytestmark = pytest.mark.server

D = dt.date
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"


def encounter(
    patient: str,
    cls: str,
    start: str,
    end: str,
    provider: str,
    *,
    role: str | None = None,
    disposition: str | None = None,
) -> dict[str, Any]:
    """An Encounter as a hospital's EHR writes it: class, maybe a facility type, dates, discharge."""
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": ACT, "code": cls},
        "subject": {"reference": f"Patient/{patient}"},
        "period": {"start": start, "end": end},
        "serviceProvider": {"reference": f"Organization/{provider}"},
    }
    if role:
        enc["type"] = [{"coding": [{"system": ROLE, "code": role}]}]
    if disposition:
        enc["hospitalization"] = {"dischargeDisposition": {"coding": [{"system": DISPOSITION, "code": disposition}]}}
    return enc


async def enrol(store: Store, raw: AsyncFhirClient, settings: Settings, tag: str, **values: Any) -> Case:
    """A case for patient ``pat-<tag>`` from 20 February 2024, pushed, with the hospital's own Patient
    record under the id the case knows the patient by."""
    case = Case(
        id=f"case-{tag}",
        programme="health-care",
        period=Period(start=D(2024, 2, 20)),
        patient=Party(kind="patient", id=f"pat-{tag}"),
        **values,
    )
    await raw.update({"resourceType": "Patient", "id": case.patient.id, "active": True}, versioned=False)
    pushed = await push_cases(store, raw, settings, [case])
    assert pushed.ok, pushed.failures
    return case


async def test_a_journey_is_recorded_flagged_and_acted_on_on_the_server(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    patient = f"pat-{tag}"
    hospital, snf, agency = f"hosp-{tag}", f"snf-{tag}", f"hha-{tag}"
    await put_organisations(raw, hospital, snf, agency)
    case = await enrol(store, raw, settings, tag, case_manager=Party(kind="practitioner", id=f"cm-{tag}"))

    journey = [
        encounter(patient, "IMP", "2024-03-01", "2024-03-05", hospital, disposition="snf"),
        encounter(patient, "NONAC", "2024-03-05", "2024-03-20", snf, role="SNF", disposition="oth"),
        encounter(patient, "HH", "2024-03-20", "2024-03-31", agency),
        encounter(patient, "IMP", "2024-03-31", "2024-04-03", hospital, disposition="home"),
    ]
    ids = [(await raw.create(e)).id for e in journey]

    report = await track_transitions(store, raw, settings)
    assert report.failed == {}
    assert (report.encounters, report.stays_added, report.new_transitions) == (4, 4, 4)
    assert (report.readmissions, report.follow_ups_added, report.team_members_added) == (1, 2, 3)

    with store.session(read_only=True) as s:
        recorded = list_transitions(s, case.id)
        tracked = get_case(s, case.id)
    assert tracked is not None
    moves = [(t.from_setting, t.to_setting, t.date, t.readmission) for t in recorded]
    assert moves == [
        (CareSetting.ACUTE_HOSPITAL, CareSetting.SKILLED_NURSING, D(2024, 3, 5), False),
        (CareSetting.SKILLED_NURSING, CareSetting.HOME_HEALTH, D(2024, 3, 20), False),
        (CareSetting.HOME_HEALTH, CareSetting.ACUTE_HOSPITAL, D(2024, 3, 31), True),
        (CareSetting.ACUTE_HOSPITAL, CareSetting.HOME, D(2024, 4, 3), False),
    ]
    assert recorded[0].discharge_disposition is DischargeDisposition.SKILLED_NURSING
    assert recorded[0].follow_up_due == D(2024, 3, 12) and recorded[3].follow_up_due == D(2024, 4, 10)
    assert [t.source_encounter for t in recorded] == [ids[0], ids[1], ids[2], ids[3]]
    assert {s.id for s in tracked.stays} == set(ids)  # stays keep their Encounter's server id

    # Running the tracker again adds nothing.
    again = await track_transitions(store, raw, settings)
    assert (again.new_transitions, again.follow_ups_added, again.team_members_added) == (0, 0, 0)
    assert again.changed_cases == []

    # The pusher sends the follow-ups and the new team members.
    sent = await push_pending(store, raw, settings)
    assert sent.ok, sent.failures
    follow_ups = [r for r in tracked.referrals if r.kind is ReferralKind.FOLLOW_UP]
    assert {r.for_stay for r in follow_ups} == {ids[0], ids[3]}
    for referral in follow_ups:
        found = (
            await raw.search("ServiceRequest")
            .where("identifier", f"{settings.identifier_system}|{referral.id}")
            .fetch_all()
        )
        assert len(found) == 1
        assert found[0]["subject"]["reference"] == f"Patient/{patient}"
    with store.session(read_only=True) as s:
        team_entry = get_ledger(s, raw.base_url, "CareTeam", f"{case.id}-careteam")
        plan_entry = get_ledger(s, raw.base_url, "CarePlan", f"{case.id}-careplan")
    assert team_entry is not None and team_entry.server_id and plan_entry is not None and plan_entry.server_id
    team = await raw.read("CareTeam", team_entry.server_id)
    members = {p["member"]["reference"] for p in team.get("participant", [])}
    assert {f"Organization/{snf}", f"Organization/{agency}", f"Organization/{hospital}"} <= members
    plan = await raw.read("CarePlan", plan_entry.server_id)
    activities = {a["reference"]["reference"] for a in plan.get("activity", []) if "reference" in a}
    assert len(activities) == 2  # the two follow-up ServiceRequests hang off the case's CarePlan


def current_setting_on(eoc: dict[str, Any]) -> tuple[str, str] | None:
    """``(care-setting code, since)`` as the EpisodeOfCare on the server says it, or None."""
    found = [e for e in eoc.get("extension", []) if e["url"] == EXT_CURRENT_SETTING]
    if not found:
        return None
    [ext] = found
    parts = {p["url"]: p for p in ext["extension"]}
    [coding] = parts["setting"]["valueCodeableConcept"]["coding"]
    assert coding["system"] == system_url("care-setting")
    return coding["code"], parts["since"]["valueDate"]


async def test_the_episode_on_the_server_says_where_the_person_is_now_and_its_status_history(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    patient = f"pat-{tag}"
    hospital, snf, agency = f"hosp-{tag}", f"snf-{tag}", f"hha-{tag}"
    await put_organisations(raw, hospital, snf, agency)
    history = [
        StatusChange(status="referred", start=D(2024, 2, 20), end=D(2024, 2, 22)),
        StatusChange(status="active", start=D(2024, 2, 22), reason="assessed"),
    ]
    case = await enrol(store, raw, settings, tag, status_history=history)
    with store.session(read_only=True) as s:
        entry = get_ledger(s, raw.base_url, "EpisodeOfCare", case.id)
    assert entry is not None and entry.server_id
    assert current_setting_on(await raw.read("EpisodeOfCare", entry.server_id)) is None  # no stays yet

    async def track_and_push() -> dict[str, Any]:
        report = await track_transitions(store, raw, settings, case_id=case.id)
        assert report.failed == {}
        sent = await push_pending(store, raw, settings)
        assert sent.ok, sent.failures
        return await raw.read("EpisodeOfCare", entry.server_id)

    # Mid-journey: out of hospital, still in the skilled nursing facility.
    await raw.create(encounter(patient, "IMP", "2024-03-01", "2024-03-05", hospital, disposition="snf"))
    in_snf = encounter(patient, "NONAC", "2024-03-05", "2024-03-20", snf, role="SNF")
    in_snf["status"] = "in-progress"
    del in_snf["period"]["end"]
    in_snf["id"] = (await raw.create(in_snf)).id
    eoc = await track_and_push()
    assert current_setting_on(eoc) == ("skilled-nursing", "2024-03-05")

    # The rest of the journey: home health, readmitted, discharged home.
    in_snf["status"] = "finished"
    in_snf["period"]["end"] = "2024-03-20"
    in_snf["hospitalization"] = {"dischargeDisposition": {"coding": [{"system": DISPOSITION, "code": "oth"}]}}
    await raw.update(in_snf, versioned=False)
    await raw.create(encounter(patient, "HH", "2024-03-20", "2024-03-31", agency))
    await raw.create(encounter(patient, "IMP", "2024-03-31", "2024-04-03", hospital, disposition="home"))
    eoc = await track_and_push()
    assert current_setting_on(eoc) == ("home", "2024-04-03")
    with store.session(read_only=True) as s:
        tracked = get_case(s, case.id)
    assert tracked is not None and tracked.current_setting is not None
    assert (tracked.current_setting.setting, tracked.current_setting.since) == (CareSetting.HOME, D(2024, 4, 3))

    # The server's statusHistory is the case's, current status included.
    history = [(h["status"], h["period"].get("start"), h["period"].get("end")) for h in eoc["statusHistory"]]
    assert history == [("planned", "2024-02-20", "2024-02-22"), ("active", "2024-02-22", None)]
    assert eoc["status"] == "active"

    # Nothing new on the server: tracking and pushing again changes nothing.
    again = await track_transitions(store, raw, settings, case_id=case.id)
    assert again.changed_cases == [] and (again.stays_added, again.stays_updated) == (0, 0)
    sent = await push_pending(store, raw, settings)
    assert sent.ok and (sent.created, sent.updated) == (0, 0)
    assert (await raw.read("EpisodeOfCare", entry.server_id)) == eoc
