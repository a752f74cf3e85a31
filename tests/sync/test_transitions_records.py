"""The tracker against the real R4 server, with Encounters as EHRs really write them.

Hospitals correct their records: an Encounter is marked entered-in-error after the fact, the same
stay is recorded as a hospitalisation with sub-encounters (``partOf``) per ward. What the tracker
derives must follow the record as it stands, never a mistake the hospital took back.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import CareSetting, ReferralKind, ReferralStatus, StayStatus
from fhir_cm.fhir import AsyncFhirClient
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
