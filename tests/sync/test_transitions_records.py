"""The tracker against the real R4 server, with Encounters as EHRs really write them.

Hospitals correct their records: an Encounter is marked entered-in-error after the fact, the same
stay is recorded as a hospitalisation with sub-encounters (``partOf``) per ward. What the tracker
derives must follow the record as it stands, never a mistake the hospital took back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import CareSetting, Case, ReferralKind, ReferralStatus, StayStatus
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.jobs import list_transitions
from fhir_cm.store import Store, get_case
from fhir_cm.sync import track_transitions
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server

D = dt.date


async def test_an_encounter_entered_in_error_makes_no_move_and_undoes_the_one_it_made(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    patient, hospital = f"pat-{tag}", f"hosp-{tag}"
    await put_organisations(raw, hospital)
    case = await enrol(store, raw, settings, tag)

    # Recorded in error from the start: no stay, no move, no follow-up.
    wrong = encounter(patient, "IMP", "2024-03-01", "2024-03-05", hospital, disposition="snf")
    wrong["status"] = "entered-in-error"
    await raw.create(wrong)
    # Unknown: nothing says the person was there, or left.
    unknown = encounter(patient, "IMP", "2024-03-10", "2024-03-12", hospital, disposition="home")
    unknown["status"] = "unknown"
    await raw.create(unknown)
    report = await track_transitions(store, raw, settings, case_id=case.id)
    assert report.failed == {}
    assert (report.stays_added, report.new_transitions, report.follow_ups_added) == (0, 0, 0)
    assert report.unrecognised == 2

    # A discharge recorded, acted on, then marked entered-in-error by the hospital.
    discharge = encounter(patient, "IMP", "2024-04-01", "2024-04-04", hospital, disposition="home")
    discharge["id"] = (await raw.create(discharge)).id
    first = await track_transitions(store, raw, settings, case_id=case.id)
    assert (first.stays_added, first.new_transitions, first.follow_ups_added) == (1, 1, 1)
    discharge["status"] = "entered-in-error"
    await raw.update(discharge, versioned=False)
    undone = await track_transitions(store, raw, settings, case_id=case.id)
    assert undone.failed == {} and undone.stays_updated == 1 and undone.new_transitions == 0
    with store.session(read_only=True) as s:
        tracked = get_case(s, case.id)
    assert tracked is not None
    assert [(st.id, st.status) for st in tracked.stays] == [(discharge["id"], StayStatus.CANCELLED)]
    assert tracked.transitions == [] and tracked.current_setting is None
    [follow_up] = [r for r in tracked.referrals if r.kind is ReferralKind.FOLLOW_UP]
    assert follow_up.status is ReferralStatus.CANCELLED and follow_up.status_reason

    again = await track_transitions(store, raw, settings, case_id=case.id)
    assert again.changed_cases == [] and again.follow_ups_added == 0
    assert {st.setting for st in tracked.stays} == {CareSetting.ACUTE_HOSPITAL}


async def test_one_hospital_stay_recorded_as_several_encounters_is_one_stay_with_one_follow_up(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """A hospitalisation with a sub-encounter per ward (``partOf``), the discharge on the parent; and a
    stay split at a ward transfer into two Encounters with no hierarchy. Neither ward move is a
    discharge: one move out of hospital each, no readmission, one follow-up per real discharge."""
    tag = uuid.uuid4().hex[:10]
    patient, hospital, snf = f"pat-{tag}", f"hosp-{tag}", f"snf-{tag}"
    await put_organisations(raw, hospital, snf)
    case = await enrol(store, raw, settings, tag)

    # The wards first (an EHR may write them before the parent is final), then the parent.
    parent = encounter(patient, "IMP", "2024-03-01", "2024-03-10", hospital, disposition="snf")
    parent["id"] = (await raw.create(parent)).id
    for start, end in (("2024-03-01", "2024-03-03"), ("2024-03-03", "2024-03-10")):
        ward = encounter(patient, "IMP", start, end, hospital)
        ward["partOf"] = {"reference": f"Encounter/{parent['id']}"}
        await raw.create(ward)
    await raw.create(encounter(patient, "NONAC", "2024-03-10", "2024-03-20", snf, role="SNF", disposition="home"))
    # Later, a stay split in two at a ward transfer, the discharge on the second.
    await raw.create(encounter(patient, "IMP", "2024-06-01", "2024-06-03", hospital))
    await raw.create(encounter(patient, "IMP", "2024-06-03", "2024-06-08", hospital, disposition="home"))

    report = await track_transitions(store, raw, settings, case_id=case.id)
    assert report.failed == {}
    with store.session(read_only=True) as s:
        tracked = get_case(s, case.id)
    assert tracked is not None
    moves = [(t.from_setting, t.to_setting, t.date, t.readmission) for t in tracked.transitions]
    assert moves == [
        (CareSetting.ACUTE_HOSPITAL, CareSetting.SKILLED_NURSING, D(2024, 3, 10), False),
        (CareSetting.SKILLED_NURSING, CareSetting.HOME, D(2024, 3, 20), False),
        (CareSetting.HOME, CareSetting.ACUTE_HOSPITAL, D(2024, 6, 1), False),
        (CareSetting.ACUTE_HOSPITAL, CareSetting.HOME, D(2024, 6, 8), False),
    ]
    assert tracked.transitions[0].discharge_disposition == "snf"
    follow_ups = sorted(r.due for r in tracked.referrals if r.kind is ReferralKind.FOLLOW_UP)
    assert follow_ups == [D(2024, 3, 17), D(2024, 6, 15)]
    assert report.follow_ups_added == 2


async def test_what_looked_like_a_discharge_until_the_rest_of_the_stay_came_in_is_taken_back(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """Over two pulls: an ED visit with a ward sub-encounter, then the visit turned into the inpatient
    hospitalisation (class EMER → IMP) with a second ward; and a ward Encounter finished before the
    next ward's was written. The follow-ups asked for the first wards are cancelled, one is asked for
    each real discharge."""
    tag = uuid.uuid4().hex[:10]
    patient, hospital = f"pat-{tag}", f"hosp-{tag}"
    await put_organisations(raw, hospital)
    case = await enrol(store, raw, settings, tag)

    visit = encounter(patient, "EMER", "2024-07-01", "", hospital)
    visit["status"] = "in-progress"
    visit["period"] = {"start": "2024-07-01"}
    visit["id"] = (await raw.create(visit)).id
    ward = encounter(patient, "IMP", "2024-07-01", "2024-07-03", hospital)
    ward["partOf"] = {"reference": f"Encounter/{visit['id']}"}
    ward_id = (await raw.create(ward)).id
    split = encounter(patient, "IMP", "2024-09-01", "2024-09-03", hospital)
    split_id = (await raw.create(split)).id
    first = await track_transitions(store, raw, settings, case_id=case.id)
    assert first.failed == {} and first.follow_ups_added == 2

    visit.update(status="finished", period={"start": "2024-07-01", "end": "2024-07-08"})
    visit["class"]["code"] = "IMP"
    visit["hospitalization"] = encounter(patient, "IMP", "", "", hospital, disposition="home")["hospitalization"]
    await raw.update(visit, versioned=False)
    second_ward = encounter(patient, "IMP", "2024-07-03", "2024-07-08", hospital)
    second_ward["partOf"] = {"reference": f"Encounter/{visit['id']}"}
    await raw.create(second_ward)
    rest = (await raw.create(encounter(patient, "IMP", "2024-09-03", "2024-09-06", hospital, disposition="home"))).id
    second = await track_transitions(store, raw, settings, case_id=case.id)
    assert second.failed == {}
    assert (second.follow_ups_added, second.follow_ups_cancelled, second.stays_folded) == (2, 2, 1)

    with store.session(read_only=True) as s:
        tracked = get_case(s, case.id)
    assert tracked is not None
    follow_ups = {r.for_stay: r for r in tracked.referrals if r.kind is ReferralKind.FOLLOW_UP}
    open_ones = {i for i, r in follow_ups.items() if r.status is not ReferralStatus.CANCELLED}
    assert open_ones == {visit["id"], rest}
    assert follow_ups[ward_id].status is ReferralStatus.CANCELLED
    assert follow_ups[split_id].status is ReferralStatus.CANCELLED
    assert {st.id: st.status for st in tracked.stays}[ward_id] is StayStatus.CANCELLED
    moves = [(t.from_setting, t.to_setting, t.date) for t in tracked.transitions]
    assert moves == [
        (CareSetting.ACUTE_HOSPITAL, CareSetting.HOME, D(2024, 7, 8)),
        (CareSetting.HOME, CareSetting.ACUTE_HOSPITAL, D(2024, 9, 1)),
        (CareSetting.ACUTE_HOSPITAL, CareSetting.HOME, D(2024, 9, 6)),
    ]
    again = await track_transitions(store, raw, settings, case_id=case.id)
    assert again.changed_cases == [] and (again.follow_ups_added, again.follow_ups_cancelled) == (0, 0)


async def _discharged(
    store: Store, raw: AsyncFhirClient, settings: Settings, end: str, disposition: str
) -> tuple[Case, dict[str, Any]]:
    """A case, and its patient's hospital stay from 1 May 2024 to ``end`` on the server."""
    tag = uuid.uuid4().hex[:10]
    await put_organisations(raw, f"hosp-{tag}")
    case = await enrol(store, raw, settings, tag)
    stay = encounter(f"pat-{tag}", "IMP", "2024-05-01", end, f"hosp-{tag}", disposition=disposition)
    stay["id"] = (await raw.create(stay)).id
    return case, stay


async def test_a_discharge_date_the_hospital_corrects_moves_the_recorded_move_and_records_no_second(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """The discharge was entered a day early and corrected: one move, on the corrected day, first
    seen when it first was, and no second transfer summary due (it was listed as two discharges)."""
    case, stay = await _discharged(store, raw, settings, "2024-05-05", "snf")
    first = await track_transitions(store, raw, settings, case_id=case.id)
    assert (first.new_transitions, first.handoffs) == (1, {case.id: [1]})
    [seen] = list_transitions(store, case.id)

    stay["period"]["end"] = "2024-05-06"
    await raw.update(stay, versioned=False)
    corrected = await track_transitions(store, raw, settings, case_id=case.id)

    assert corrected.failed == {} and corrected.stays_updated == 1
    assert (corrected.new_transitions, corrected.handoffs) == (0, {})
    [move] = list_transitions(store, case.id)
    assert (move.from_stay, move.to_setting, move.date) == (stay["id"], CareSetting.SKILLED_NURSING, D(2024, 5, 6))
    assert move.recorded_at == seen.recorded_at and move.source_encounter == stay["id"]


async def test_a_follow_up_not_yet_taken_up_is_due_from_the_corrected_discharge_day(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """Entered a day late and corrected, the discharge kept its follow-up due 8 days after it: past
    the 7 days the programme promises (and the 7-day follow-up measure counts)."""
    case, stay = await _discharged(store, raw, settings, "2024-05-06", "home")
    assert (await track_transitions(store, raw, settings, case_id=case.id)).follow_ups_added == 1

    stay["period"]["end"] = "2024-05-05"
    await raw.update(stay, versioned=False)
    corrected = await track_transitions(store, raw, settings, case_id=case.id)

    assert corrected.failed == {} and corrected.follow_ups_added == 0 and corrected.changed_cases == [case.id]
    with store.session(read_only=True) as s:
        tracked = get_case(s, case.id)
    assert tracked is not None
    [follow_up] = [r for r in tracked.referrals if r.kind is ReferralKind.FOLLOW_UP]
    assert (follow_up.authored, follow_up.due, follow_up.status) == (D(2024, 5, 5), D(2024, 5, 12), "requested")
    assert [t.follow_up_due for t in tracked.transitions] == [D(2024, 5, 12)]
