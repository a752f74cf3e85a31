"""The tracker reads a patient's Encounters by ``patient=Patient/<id>``; a server may answer that with
an Encounter of another server's ``Patient/<id>`` (sekmet matches an absolute reference by its tail;
HAPI does not), whose stay is another person's and must not be recorded as a move of the local one."""

from __future__ import annotations

import uuid

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case, list_transitions
from fhir_cm.sync import track_transitions
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server


async def test_a_stay_of_another_servers_patient_of_the_same_id_is_not_tracked(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    patient, hospital = f"pat-{tag}", f"hosp-{tag}"
    await put_organisations(raw, hospital)
    case = await enrol(store, raw, settings, tag)
    theirs = encounter(patient, "IMP", "2024-03-01", "2024-03-05", hospital, disposition="home")
    theirs["subject"] = {"reference": f"https://other.example/fhir/Patient/{patient}"}
    await raw.create(theirs)
    mine = (await raw.create(encounter(patient, "IMP", "2024-04-01", "2024-04-03", hospital, disposition="home"))).id

    report = await track_transitions(store, raw, settings)

    assert report.failed == {}
    with store.session(read_only=True) as s:
        tracked = get_case(s, case.id)
        moves = list_transitions(s, case.id)
    assert tracked is not None and [s.id for s in tracked.stays] == [mine]
    assert [t.source_encounter for t in moves] == [mine]
