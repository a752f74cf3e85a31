"""The tracker when the hospital merged the patient's duplicate records, against the real R4 server.

A merge (HAPI's ``$merge``, an MPI) retires one Patient — ``active: false`` and a ``link`` of type
``replaced-by`` to the survivor, which may carry ``replaces`` back — and the hospital records what
follows under the survivor. A case enrolled on the retired record must still see the discharge
recorded under the survivor, ask for its follow-up and from then on refer to the survivor.
Only ``replaced-by`` says "use that record instead": ``seealso`` and ``refer`` are not followed.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, ReferralKind
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.jobs import run_pull
from fhir_cm.store import Store, get_case, get_ledger, list_transitions
from fhir_cm.sync import push_pending, track_transitions
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server


async def _linked(raw: AsyncFhirClient, patient: str, link_type: str, other: str) -> None:
    """``Patient/<patient>`` as the hospital leaves it after linking it to ``Patient/<other>``."""
    retired = link_type == "replaced-by"
    record: dict[str, Any] = {"resourceType": "Patient", "id": patient, "active": not retired}
    record["link"] = [{"other": {"reference": f"Patient/{other}"}, "type": link_type}]
    await raw.update(record, versioned=False)


async def _case_with_a_discharge_under_another_record(
    store: Store, raw: AsyncFhirClient, settings: Settings, link_type: str
) -> tuple[Case, str, str]:
    """A pushed case on ``pat-<tag>``, that record linked (``link_type``) to ``pat-<tag>-2``, and a
    hospital stay discharged home recorded under ``pat-<tag>-2``: ``(case, other id, Encounter id)``."""
    tag = uuid.uuid4().hex[:10]
    await put_organisations(raw, f"hosp-{tag}")
    case = await enrol(store, raw, settings, tag)
    other = f"{case.patient.id}-2"
    await raw.update({"resourceType": "Patient", "id": other, "active": True}, versioned=False)
    await _linked(raw, case.patient.id, link_type, other)
    if link_type == "replaced-by":
        await _linked(raw, other, "replaces", case.patient.id)
    stay = encounter(other, "IMP", "2024-05-01", "2024-05-04", f"hosp-{tag}", disposition="home")
    return case, other, (await raw.create(stay)).id


async def test_a_discharge_under_the_record_the_patient_was_merged_into_is_followed_up(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case, survivor, stay = await _case_with_a_discharge_under_another_record(store, raw, settings, "replaced-by")

    report = await track_transitions(store, raw, settings, case_id=case.id)

    assert report.failed == {}
    assert (report.encounters, report.new_transitions, report.follow_ups_added) == (1, 1, 1)
    assert report.patients_merged == [case.id]
    assert _moves(store, case.id) == [stay]  # the move the survivor's Encounter shows
    with store.session(read_only=True) as s:
        entry = get_ledger(s, raw.base_url, "Patient", case.patient.id)
        tracked = get_case(s, case.id)
    assert entry is not None and entry.server_id == survivor  # the survivor is the case's record here now
    assert tracked is not None and tracked.patient.id == case.patient.id  # the case keeps the EHR's party

    # The follow-up goes out naming the record in use; a second run adds nothing.
    sent = await push_pending(store, raw, settings)
    assert sent.ok, sent.failures
    [follow_up] = [r for r in tracked.referrals if r.kind is ReferralKind.FOLLOW_UP]
    [request] = (
        await raw.search("ServiceRequest")
        .where("identifier", f"{settings.identifier_system}|{follow_up.id}")
        .fetch_all()
    )
    assert request["subject"]["reference"] == f"Patient/{survivor}"
    again = await track_transitions(store, raw, settings, case_id=case.id)
    assert again.failed == {} and (again.new_transitions, again.follow_ups_added) == (0, 0)
    assert again.changed_cases == []


async def watched_case(store: Store, raw: AsyncFhirClient, settings: Settings) -> tuple[Case, str]:
    """A pushed case on ``pat-<tag>`` (hospital ``hosp-<tag>``) that a first pull round has seeded
    the watch with: ``(case, tag)``."""
    tag = uuid.uuid4().hex[:10]
    await put_organisations(raw, f"hosp-{tag}")
    case = await enrol(store, raw, settings, tag)
    first = await run_pull(store, settings)
    assert first.watch is not None and case.id in first.watch.seeded
    return case, tag


def _moves(store: Store, case_id: str) -> list[str | None]:
    with store.session(read_only=True) as s:
        return [t.source_encounter for t in list_transitions(s, case_id)]


@pytest.mark.parametrize("link_type", ["seealso", "refer"])
async def test_a_record_only_linked_to_another_is_not_read_as_merged(
    store: Store, raw: AsyncFhirClient, settings: Settings, link_type: str
) -> None:
    """Both records stay in use: the other's Encounters are not taken for this case's patient's."""
    case, _, _ = await _case_with_a_discharge_under_another_record(store, raw, settings, link_type)

    report = await track_transitions(store, raw, settings, case_id=case.id)

    assert report.failed == {} and report.patients_merged == []
    assert (report.encounters, report.new_transitions) == (0, 0)
    with store.session(read_only=True) as s:
        entry = get_ledger(s, raw.base_url, "Patient", case.patient.id)
    assert entry is not None and entry.server_id == case.patient.id


async def test_replaced_by_links_that_loop_back_are_read_once_and_name_no_survivor(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """A loop no merge makes: the tracker ends, reads each record once, and records nothing."""
    case, other, _ = await _case_with_a_discharge_under_another_record(store, raw, settings, "replaced-by")
    await _linked(raw, other, "replaced-by", case.patient.id)

    report = await track_transitions(store, raw, settings, case_id=case.id)

    assert report.failed == {} and report.patients_merged == []
    assert report.encounters == 1
    with store.session(read_only=True) as s:
        entry = get_ledger(s, raw.base_url, "Patient", case.patient.id)
    assert entry is not None and entry.server_id == case.patient.id


def test_only_a_patient_on_the_same_server_is_followed() -> None:
    from fhir_cm.sync._patient_links import replaced_by

    base = "https://ehr.example/fhir"

    def link(reference: str, kind: str = "replaced-by") -> dict[str, Any]:
        return {"resourceType": "Patient", "link": [{"type": kind, "other": {"reference": reference}}]}

    assert replaced_by(link("Patient/b"), base) == "b"
    assert replaced_by(link(f"{base}/Patient/b"), base) == "b"
    assert replaced_by(link("https://elsewhere.example/fhir/Patient/b"), base) is None
    assert replaced_by(link("RelatedPerson/b"), base) is None
    assert replaced_by(link("Patient/b", "replaces"), base) is None


async def test_a_pull_round_sees_a_discharge_under_the_record_a_watched_patient_was_merged_into(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """The watch asks only for the Encounters of the records it knows: the merge itself (the retired
    record changed) must bring the case to the tracker, and once followed it is not brought again."""
    case, tag = await watched_case(store, raw, settings)
    survivor = f"{case.patient.id}-2"
    await raw.update({"resourceType": "Patient", "id": survivor, "active": True}, versioned=False)
    await _linked(raw, case.patient.id, "replaced-by", survivor)
    stay = encounter(survivor, "IMP", "2024-05-01", "2024-05-04", f"hosp-{tag}", disposition="home")
    stay_id = (await raw.create(stay)).id

    second = await run_pull(store, settings)
    assert second.watch is not None and second.watch.touched == [case.id] and second.watch.merged == 1
    assert _moves(store, case.id) == [stay_id]
    assert second.follow_ups is not None and second.follow_ups.on_server == [case.id]

    third = await run_pull(store, settings)
    assert third.watch is not None and (third.watch.touched, third.watch.merged) == ([], 0)


async def test_a_merge_undone_stops_reading_the_other_record_as_the_patients(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """The hospital undid a merge (the links taken away, the record active again): the other record is
    another person's again, so a stay recorded under it is not this case's, and the case is pushed
    naming its own record again."""
    case, other, stay = await _case_with_a_discharge_under_another_record(store, raw, settings, "replaced-by")
    merged = await track_transitions(store, raw, settings, case_id=case.id)
    assert merged.patients_merged == [case.id] and _moves(store, case.id) == [stay]

    for pid in (case.patient.id, other):  # the merge undone: each record as it was before
        await raw.update({"resourceType": "Patient", "id": pid, "active": True}, versioned=False)
    tag = case.patient.id.removeprefix("pat-")
    later = encounter(other, "IMP", "2024-06-01", "2024-06-05", f"hosp-{tag}", disposition="home")
    await raw.create(later)

    undone = await track_transitions(store, raw, settings, case_id=case.id)

    assert undone.failed == {} and undone.patients_merged == []
    assert undone.patients_unmerged == [case.id]
    assert (undone.new_transitions, undone.follow_ups_added) == (0, 0)  # the other person's stay is not read
    with store.session(read_only=True) as s:
        entry = get_ledger(s, raw.base_url, "Patient", case.patient.id)
    assert entry is not None and entry.server_id == case.patient.id
    again = await track_transitions(store, raw, settings, case_id=case.id)
    assert again.failed == {} and (again.patients_unmerged, again.encounters, again.new_transitions) == ([], 0, 0)


async def test_a_merge_that_moves_the_cases_references_keeps_the_cases_patient(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """A merge that moves every reference to the survivor (HAPI's ``$merge``) rewrites the case's own
    resources too: the pull must not read that as the case now being another person's (the case keeps
    the EHR's party), and the same round follows the merge."""
    case, tag = await watched_case(store, raw, settings)
    survivor = f"{case.patient.id}-2"
    await raw.update({"resourceType": "Patient", "id": survivor, "active": True}, versioned=False)
    await _linked(raw, case.patient.id, "replaced-by", survivor)
    for rtype in ("EpisodeOfCare", "CarePlan"):  # what names the retired record names the survivor now
        for r in await raw.search(rtype).where("identifier", f"{settings.identifier_system}|").fetch_all():
            await raw.update(
                {**r, ("patient" if rtype == "EpisodeOfCare" else "subject"): {"reference": f"Patient/{survivor}"}}
            )
    stay = encounter(survivor, "IMP", "2024-05-01", "2024-05-04", f"hosp-{tag}", disposition="home")
    stay_id = (await raw.create(stay)).id

    second = await run_pull(store, settings)

    assert second.pull.conflicts == 0 and second.transitions.failed == {}
    with store.session(read_only=True) as s:
        after = get_case(s, case.id)
        entry = get_ledger(s, raw.base_url, "Patient", case.patient.id)
    assert after is not None and after.patient.id == case.patient.id
    assert entry is not None and entry.server_id == survivor
    assert _moves(store, case.id) == [stay_id]
