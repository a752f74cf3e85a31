"""An import reads an absolute reference as one to a local resource only at the base its Bundle's
fullUrls name (the server the file came from); ``https://other.example/fhir/Patient/1`` names a
person of another server, and none of their data joins the local ``Patient/1``'s case."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party, Period
from fhir_cm.interchange import BadInputError, import_files
from fhir_cm.store import Store, get_case, get_resource, put_resources, save_case
from tests.interchange.test_import_ehr import EPISODE, GOAL, PATIENT, synthea_transaction

BASE = "https://ehr.example.org/fhir"
OTHER = "https://other.example/fhir"


def export_of(subject_of_goal: str, patient_of_episode: str = f"Patient/{PATIENT}") -> dict[str, Any]:
    """A server's export (absolute fullUrls at ``BASE``) of the patient, their episode and a goal."""
    patient, episode, goal = (e["resource"] for e in synthea_transaction()["entry"][:3])
    episode = {**episode, "patient": {"reference": patient_of_episode}}
    goal = {**goal, "subject": {"reference": subject_of_goal}}
    entries = [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r} for r in (patient, episode, goal)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def imported(tmp_path: Path, store: Store, settings: Settings, bundle: dict[str, Any]) -> str:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(bundle))
    import_files(store, [path], settings)
    with store.session(read_only=True) as s:
        stored = get_resource(s, "Goal", GOAL)
    assert stored is not None
    return stored.case_id


def test_a_goal_naming_its_patient_at_the_files_own_base_joins_the_patients_case(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    assert imported(tmp_path, store, settings, export_of(f"{BASE}/Patient/{PATIENT}")) == EPISODE
    with store.session(read_only=True) as s:
        case = get_case(s, EPISODE)
    assert case is not None and [g.id for g in case.goals] == [GOAL]


def test_a_goal_of_a_patient_on_another_server_stays_out_of_the_local_patients_case(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    case_id = imported(tmp_path, store, settings, export_of(f"{OTHER}/Patient/{PATIENT}"))

    assert case_id != EPISODE
    with store.session(read_only=True) as s:
        case, elsewhere = get_case(s, EPISODE), get_case(s, case_id)
        stored = get_resource(s, "Goal", GOAL)
    assert case is not None and case.goals == []
    assert elsewhere is not None and elsewhere.patient.id == "unidentified"
    assert stored is not None and stored.raw["subject"] == {"reference": f"{OTHER}/Patient/{PATIENT}"}  # as written


def test_an_episode_of_a_patient_on_another_server_is_refused_naming_that_server(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    bundle = export_of(f"Patient/{PATIENT}", patient_of_episode=f"{OTHER}/Patient/{PATIENT}")
    with pytest.raises(BadInputError, match="another server") as refused:
        imported(tmp_path, store, settings, bundle)
    assert OTHER in str(refused.value) and PATIENT not in str(refused.value)
    with store.session(read_only=True) as s:
        assert get_case(s, EPISODE) is None


def test_a_pulled_copy_naming_its_patient_at_its_servers_base_still_keeps_another_patients_goal_out(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    pulled = {
        "resourceType": "Goal",
        "id": "g-shared",
        "lifecycleStatus": "active",
        "description": {"text": "walk"},
        "startDate": "2024-01-03",
        "subject": {"reference": f"{BASE}/Patient/pat-a"},  # as the server it was pulled from wrote it
    }
    with store.session() as s:
        case = Case(id="case-a", programme="health-care", period=Period(start=dt.date(2024, 1, 2)),
                    patient=Party(kind="patient", id="pat-a"))  # fmt: skip
        save_case(s, case, enqueue=False)
        put_resources(s, case.id, [("g-shared", pulled)], fhir_version="R4", source=BASE)
    path = tmp_path / "other.json"
    path.write_text(json.dumps({**pulled, "subject": {"reference": "Patient/pat-b"}}))

    with pytest.raises(BadInputError, match="another patient's resource in the store"):
        import_files(store, [path], settings)
