"""The tracking queue against the real servers: what an id-only notification queued is tracked.

A queue row names the Encounter a notification was about. Rows queued before focus references were
read as ``Type/id`` hold the address as the server wrote it (versioned, absolute): the worker read
``Encounter/<id>/_history/1`` as an id, raised, and every round after failed on the same row.
"""

from __future__ import annotations

import uuid

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, list_transitions, pending_tracking, queue_tracking
from fhir_cm.sync import track_notified
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server


async def test_a_queued_address_versioned_or_absolute_is_read_and_its_case_tracked(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    case = await enrol(store, raw, settings, tag)
    hospital, snf = f"hosp-{tag}", f"snf-{tag}"
    await put_organisations(raw, hospital, snf)
    stay = await raw.create(encounter(f"pat-{tag}", "IMP", "2024-03-01", "2024-03-05", hospital, disposition="snf"))
    after = await raw.create(
        encounter(f"pat-{tag}", "NONAC", "2024-03-05", "2024-03-20", snf, role="SNF", disposition="oth")
    )
    with store.session() as s:
        queue_tracking(s, raw.base_url, resource=f"Encounter/{stay.id}/_history/1", reason="notification")
        queue_tracking(s, raw.base_url, resource=f"{raw.base_url}/Encounter/{after.id}", reason="notification")
        queue_tracking(s, raw.base_url, resource="not a reference/at all", reason="notification")
        queue_tracking(s, raw.base_url, resource="Encounter/..", reason="notification")  # no URL path carries it

    report = await track_notified(store, raw, settings)

    assert report.transitions.failed == {} and report.transitions.cases == 1
    with store.session(read_only=True) as s:
        moves = [(t.from_setting.value, t.to_setting.value) for t in list_transitions(s, case.id)]
        left = pending_tracking(s, raw.base_url)
    assert moves == [("acute-hospital", "skilled-nursing")]
    assert left == []  # every row done: the one naming no resource has nothing to track
