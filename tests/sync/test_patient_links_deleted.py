"""The tracker when the hospital's merge deleted the retired Patient record, against sekmet.

A merge that deletes its source (``$merge`` with ``delete-source``, an MPI purging a duplicate)
leaves no ``replaced-by`` link to read: the read answers 410 Gone. A survivor may still name the
deleted record as one it ``replaces``, and ``Patient?link=Patient/<old>`` finds it. HAPI refuses
both a survivor's link to a deleted record and deleting a record a survivor links to (referential
integrity), so these run on sekmet, a server that keeps such a link as a hospital's MPI feed
leaves it.
"""

from __future__ import annotations

import uuid

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.jobs import run_pull
from fhir_cm.store import Store, get_ledger, list_transitions
from fhir_cm.sync import track_transitions
from fhir_cm.sync._patient_links import follow_replaced_by
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_merged import watched_case
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server


@pytest.fixture
def fhir_server(sekmet_base: str) -> str:
    return sekmet_base


async def _deleted_into(
    store: Store, raw: AsyncFhirClient, settings: Settings, link_type: str
) -> tuple[Case, str, str]:
    """A pushed case on ``pat-<tag>``; ``pat-<tag>-2`` linking to it as ``link_type``, with a hospital
    stay discharged home; ``pat-<tag>`` then deleted: ``(case, other id, Encounter id)``."""
    tag = uuid.uuid4().hex[:10]
    await put_organisations(raw, f"hosp-{tag}")
    case = await enrol(store, raw, settings, tag)
    other = f"{case.patient.id}-2"
    link = {"other": {"reference": f"Patient/{case.patient.id}"}, "type": link_type}
    await raw.update({"resourceType": "Patient", "id": other, "active": True, "link": [link]}, versioned=False)
    stay = encounter(other, "IMP", "2024-05-01", "2024-05-04", f"hosp-{tag}", disposition="home")
    stay_id = (await raw.create(stay)).id
    await raw.delete("Patient", case.patient.id)
    return case, other, stay_id


async def test_a_discharge_under_the_survivor_of_a_deleted_record_is_followed_up(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case, survivor, stay = await _deleted_into(store, raw, settings, "replaces")

    report = await track_transitions(store, raw, settings, case_id=case.id)

    assert report.failed == {} and report.patients_merged == [case.id]
    assert (report.new_transitions, report.follow_ups_added) == (1, 1)
    with store.session(read_only=True) as s:
        assert [t.source_encounter for t in list_transitions(s, case.id)] == [stay]
        entry = get_ledger(s, raw.base_url, "Patient", case.patient.id)
    assert entry is not None and entry.server_id == survivor


async def test_a_deleted_record_read_on_its_own_finds_its_survivor_too(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """As a server refusing ``Patient?_id=`` has each record read: the read answers 410 Gone."""
    case, survivor, _ = await _deleted_into(store, raw, settings, "replaces")

    chain = await follow_replaced_by(raw, case.patient.id)

    assert (chain.ids, chain.survivor) == ([case.patient.id, survivor], survivor)


async def test_a_record_only_seealso_linked_to_a_deleted_one_is_not_its_survivor(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case, _, _ = await _deleted_into(store, raw, settings, "seealso")

    report = await track_transitions(store, raw, settings, case_id=case.id)

    assert report.failed == {} and report.patients_merged == []
    assert (report.encounters, report.new_transitions) == (0, 0)


async def test_a_pull_round_sees_a_watched_patients_record_deleted_into_a_survivor(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """The watch reads only the watched records, and a deleted one does not come back changed: the
    survivor that replaces it, changed since, must bring the case to the tracker."""
    case, tag = await watched_case(store, raw, settings)
    survivor = f"{case.patient.id}-2"
    link = {"other": {"reference": f"Patient/{case.patient.id}"}, "type": "replaces"}
    await raw.update({"resourceType": "Patient", "id": survivor, "active": True, "link": [link]}, versioned=False)
    stay = encounter(survivor, "IMP", "2024-05-01", "2024-05-04", f"hosp-{tag}", disposition="home")
    stay_id = (await raw.create(stay)).id
    await raw.delete("Patient", case.patient.id)

    second = await run_pull(store, settings)
    assert second.watch is not None and (second.watch.touched, second.watch.merged) == ([case.id], 1)
    with store.session(read_only=True) as s:
        assert [t.source_encounter for t in list_transitions(s, case.id)] == [stay_id]
    third = await run_pull(store, settings)
    assert third.watch is not None and (third.watch.touched, third.watch.merged) == ([], 0)
