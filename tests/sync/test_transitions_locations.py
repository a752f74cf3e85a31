"""The tracker against the real R4 server, with an Encounter's location history as hospitals keep it.

An admission through the emergency department is one inpatient Encounter whose ``location`` lists
the ED bay (``completed``) and then the ward; a bed booked elsewhere is listed ``planned``. The stay
is where the person is, or was when the Encounter ended: read from every location ever listed, the
ED's type outranked the inpatient class and the ward, so the hospital stay read as an emergency
visit and its discharge got no follow-up.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import CareSetting, ReferralKind
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case
from fhir_cm.sync import track_transitions
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import ROLE, encounter, enrol

pytestmark = pytest.mark.server

D = dt.date


async def _location(raw: AsyncFhirClient, tag: str, name: str, role: str) -> str:
    loc = {
        "resourceType": "Location",
        "id": f"{name}-{tag}",
        "name": name,
        "type": [{"coding": [{"system": ROLE, "code": role}]}],
    }
    await raw.update(loc, versioned=False)
    return f"Location/{loc['id']}"


def _at(reference: str, status: str, start: str, end: str | None = None) -> dict[str, Any]:
    period = {"start": start, **({"end": end} if end else {})}
    return {"location": {"reference": reference}, "status": status, "period": period}


async def test_a_stay_is_in_the_setting_of_where_the_person_is_or_ended_not_of_where_they_passed(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    patient, hospital = f"pat-{tag}", f"hosp-{tag}"
    await put_organisations(raw, hospital)
    case = await enrol(store, raw, settings, tag)
    ed = await _location(raw, tag, "ed", "ER")
    ward = await _location(raw, tag, "ward", "HOSP")
    rehab = await _location(raw, tag, "rehab", "RH")

    admitted = encounter(patient, "IMP", "2024-03-01", "2024-03-05", hospital, disposition="home")
    admitted["location"] = [
        _at(ed, "completed", "2024-03-01T02:00:00Z", "2024-03-01T09:00:00Z"),
        _at(ward, "completed", "2024-03-01T09:00:00Z", "2024-03-05T11:00:00Z"),
    ]
    await raw.create(admitted)
    now_in = encounter(patient, "IMP", "2024-04-01", "", hospital)
    now_in["status"], now_in["period"] = "in-progress", {"start": "2024-04-01"}
    now_in["location"] = [
        _at(ed, "completed", "2024-04-01T02:00:00Z", "2024-04-01T06:00:00Z"),
        _at(ward, "active", "2024-04-01T06:00:00Z"),
        _at(rehab, "planned", "2024-04-09"),  # a bed booked, not yet a stay there
    ]
    await raw.create(now_in)

    report = await track_transitions(store, raw, settings, case_id=case.id)

    assert report.failed == {} and report.stays_added == 2
    with store.session(read_only=True) as s:
        tracked = get_case(s, case.id)
    assert tracked is not None
    assert sorted((st.start, st.setting) for st in tracked.stays) == [
        (D(2024, 3, 1), CareSetting.ACUTE_HOSPITAL),
        (D(2024, 4, 1), CareSetting.ACUTE_HOSPITAL),
    ]
    assert [r.due for r in tracked.referrals if r.kind is ReferralKind.FOLLOW_UP] == [D(2024, 3, 12)]
