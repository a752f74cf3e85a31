"""Import of files shaped as EHRs and Synthea write them: in-Bundle ``urn:uuid`` references, …"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fhir_cm.config import Settings
from fhir_cm.interchange import export_cases, import_files
from fhir_cm.mapping import iter_references
from fhir_cm.store import Store, get_case, get_resource, list_cases

PATIENT = "6f2c54a0-1b5e-4c38-9d0e-2a4f8f6c1e01"
EPISODE = "0b7f1e2d-3c4a-4b5c-8d6e-7f8091a2b3c4"
GOAL = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
STAY = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    url = f"urn:uuid:{resource['id']}"
    return {"fullUrl": url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def synthea_transaction() -> dict[str, Any]:
    """A Synthea-style transaction: every reference between entries is the target's ``urn:uuid``."""
    patient = f"urn:uuid:{PATIENT}"
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": PATIENT,
            "name": [{"family": "Doe", "given": ["Jane"]}],
            "gender": "female",
            "birthDate": "1950-03-04",
        },
        {
            "resourceType": "EpisodeOfCare",
            "id": EPISODE,
            "status": "active",
            "type": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/episodeofcare-type", "code": "hacc"}]}
            ],
            "patient": {"reference": patient},
            "period": {"start": "2024-01-02"},
        },
        {
            "resourceType": "Goal",
            "id": GOAL,
            "lifecycleStatus": "active",
            "description": {"text": "Walk 30 minutes a day"},
            "subject": {"reference": patient},
            "startDate": "2024-01-03",
        },
        {
            "resourceType": "Encounter",
            "id": STAY,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": patient, "display": "Mrs. Jane Doe"},
            "episodeOfCare": [{"reference": f"urn:uuid:{EPISODE}"}],
            "period": {"start": "2024-02-01T10:00:00-05:00", "end": "2024-02-05T10:00:00-05:00"},
        },
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(r) for r in resources]}


def test_urn_uuid_references_of_a_transaction_name_the_patient_and_resolve_in_the_export(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    path = tmp_path / "synthea.json"
    path.write_text(json.dumps(synthea_transaction()))

    report = import_files(store, [path], settings)

    assert report.case_ids == [EPISODE]
    with store.session(read_only=True) as s:
        case = get_case(s, EPISODE)
        assert [c.id for c in list_cases(s)] == [EPISODE]
    assert case is not None
    assert case.patient.id == PATIENT
    assert [g.id for g in case.goals] == [GOAL] and [stay.id for stay in case.stays] == [STAY]
    exported = export_cases(store, settings)
    names = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in exported["entry"]}
    names |= {e["fullUrl"] for e in exported["entry"]}
    assert "Patient" in {n.split("/")[0] for n in names}
    dangling = [r for e in exported["entry"] for r in iter_references(e["resource"]) if r not in names]
    assert dangling == []


def test_a_patient_resource_joins_its_episodes_case_not_an_unidentified_one(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    # A server's export: absolute fullUrls, references as Type/id; the Patient names no patient itself.
    base = "https://ehr.example.org/fhir"
    entries = [
        {"fullUrl": f"{base}/{e['resource']['resourceType']}/{e['resource']['id']}", "resource": e["resource"]}
        for e in synthea_transaction()["entry"]
    ]
    text = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
    text = text.replace(f"urn:uuid:{PATIENT}", f"Patient/{PATIENT}").replace(
        f"urn:uuid:{EPISODE}", f"EpisodeOfCare/{EPISODE}"
    )
    path = tmp_path / "export.json"
    path.write_text(text)

    report = import_files(store, [path], settings)

    assert report.case_ids == [EPISODE]


def _version(resource: dict[str, Any], version: int, **changes: Any) -> dict[str, Any]:
    return {**resource, **changes, "meta": {"versionId": str(version), "lastUpdated": f"2024-03-0{version}T10:00:00Z"}}


def test_a_history_bundle_gives_each_resource_as_its_newest_version(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    # GET [base]/_history lists versions newest first, and a deletion as an entry with no resource.
    episode, goal, stay = (e["resource"] for e in synthea_transaction()["entry"][1:4])
    episode = {**episode, "patient": {"reference": f"Patient/{PATIENT}"}}
    goal = {**goal, "subject": {"reference": f"Patient/{PATIENT}"}}
    stay = {
        **stay,
        "subject": {"reference": f"Patient/{PATIENT}"},
        "episodeOfCare": [{"reference": f"EpisodeOfCare/{EPISODE}"}],
    }
    base = "https://ehr.example.org/fhir"
    entries = [
        {"fullUrl": f"{base}/Encounter/{STAY}", "request": {"method": "DELETE", "url": f"Encounter/{STAY}"}},
        {
            "fullUrl": f"{base}/Goal/{GOAL}",
            "resource": _version(goal, 2, description={"text": "Walk 45 minutes a day"}),
        },
        {"fullUrl": f"{base}/Goal/{GOAL}", "resource": _version(goal, 1)},
        {"fullUrl": f"{base}/Encounter/{STAY}", "resource": _version(stay, 1)},
        {"fullUrl": f"{base}/EpisodeOfCare/{EPISODE}", "resource": _version(episode, 1)},
    ]
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "history", "entry": entries}))

    report = import_files(store, [path], settings)

    assert report.resources == 2
    with store.session(read_only=True) as s:
        case = get_case(s, EPISODE)
    assert case is not None
    assert [g.description for g in case.goals] == ["Walk 45 minutes a day"]
    assert case.stays == []


def test_a_conditional_reference_one_entry_answers_names_that_entry(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    # Synthea names providers as Organization?identifier=…, the Organization being an entry of the Bundle.
    npi = "https://github.com/synthetichealth/synthea"
    bundle = synthea_transaction()
    hospital = {"resourceType": "Organization", "id": "org-9", "identifier": [{"system": npi, "value": "h-1"}]}
    bundle["entry"].append(_entry(hospital))
    stay = bundle["entry"][3]["resource"]
    stay["serviceProvider"] = {"reference": f"Organization?identifier={npi}|h-1", "display": "HOSPITAL"}
    path = tmp_path / "synthea.json"
    path.write_text(json.dumps(bundle))

    import_files(store, [path], settings)

    with store.session(read_only=True) as s:
        case = get_case(s, EPISODE)
    assert case is not None
    assert [(stay.provider.id if stay.provider else None) for stay in case.stays] == ["org-9"]


MRN = {"system": "http://hospital.example.org/mrn", "value": "MRN-4711"}
EPISODE_NUMBER = {"system": "http://hospital.example.org/episodes", "value": "EP-12"}


def _by_identifier(bundle: dict[str, Any]) -> dict[str, Any]:
    """An EHR export naming the patient and the episode by identifier only (a logical reference), as
    systems do that hand out no ids the receiver knows."""
    patient, episode, goal, stay = (e["resource"] for e in bundle["entry"])
    patient["identifier"] = [MRN]
    episode["identifier"] = [EPISODE_NUMBER]
    goal["subject"] = {"identifier": MRN, "type": "Patient"}
    stay["subject"] = {"identifier": MRN, "display": "Mrs. Jane Doe"}
    stay["episodeOfCare"] = [{"identifier": EPISODE_NUMBER}]
    return bundle


def test_references_by_identifier_only_name_the_entry_holding_that_identifier(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_by_identifier(synthea_transaction())))

    report = import_files(store, [path], settings)

    assert report.case_ids == [EPISODE]
    with store.session(read_only=True) as s:
        case = get_case(s, EPISODE)
        stay = get_resource(s, "Encounter", STAY)
    assert case is not None
    assert [g.id for g in case.goals] == [GOAL] and [stay.id for stay in case.stays] == [STAY]
    assert stay is not None and stay.raw["subject"] == {
        "reference": f"Patient/{PATIENT}",
        "identifier": MRN,
        "display": "Mrs. Jane Doe",
    }  # what the hospital wrote is kept beside the entry it names
    assert stay.raw["episodeOfCare"] == [{"reference": f"EpisodeOfCare/{EPISODE}", "identifier": EPISODE_NUMBER}]


def test_a_reference_by_identifier_only_names_a_patient_imported_before(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    bundle = _by_identifier(synthea_transaction())
    first, later = tmp_path / "first.json", tmp_path / "later.json"
    first.write_text(json.dumps({**bundle, "entry": bundle["entry"][:2]}))
    later.write_text(json.dumps({**bundle, "entry": bundle["entry"][2:3]}))  # the Goal alone

    import_files(store, [first], settings)
    report = import_files(store, [later], settings)

    assert report.case_ids == [EPISODE]
    with store.session(read_only=True) as s:
        case = get_case(s, EPISODE)
    assert case is not None and [g.id for g in case.goals] == [GOAL]


def test_an_identifier_two_entries_hold_names_neither(tmp_path: Path, store: Store, settings: Settings) -> None:
    bundle = _by_identifier(synthea_transaction())
    twin = {"resourceType": "Patient", "id": "p-twin", "identifier": [MRN]}
    bundle["entry"].append(_entry(twin))
    path = tmp_path / "export.json"
    path.write_text(json.dumps(bundle))

    import_files(store, [path], settings)

    with store.session(read_only=True) as s:
        goal = get_resource(s, "Goal", GOAL)
    assert goal is not None and goal.raw["subject"] == {"identifier": MRN, "type": "Patient"}
    assert goal.case_id != EPISODE


def test_urn_oid_references_of_a_bundle_name_the_entries_as_urn_uuids_do(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    # A Bundle's fullUrl may be a urn:oid as well as a urn:uuid; the patient's entry has no id.
    text = json.dumps(synthea_transaction())
    text = text.replace(f"urn:uuid:{PATIENT}", "urn:oid:2.16.840.1.113883.19.5.1")
    text = text.replace(f"urn:uuid:{EPISODE}", "urn:oid:2.16.840.1.113883.19.5.2")
    bundle = json.loads(text)
    del bundle["entry"][0]["resource"]["id"]
    path = tmp_path / "oid.json"
    path.write_text(json.dumps(bundle))

    report = import_files(store, [path], settings)

    assert report.case_ids == [EPISODE]
    with store.session(read_only=True) as s:
        case = get_case(s, EPISODE)
        patient = get_resource(s, "Patient", "2.16.840.1.113883.19.5.1")
    assert case is not None and case.patient.id == "2.16.840.1.113883.19.5.1"
    assert [stay.id for stay in case.stays] == [STAY] and [g.id for g in case.goals] == [GOAL]
    assert patient is not None and patient.case_id == EPISODE
