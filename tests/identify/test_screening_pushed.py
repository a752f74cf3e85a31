"""Screening a server the cases were pushed to: a case's patient is the one the server holds, under
whatever id the server gave it (sekmet chooses its own; HAPI takes ours)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party, Period, Stay
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.identify import enrol_candidates, screen_population
from fhir_cm.store import get_ledger, list_candidates, list_cases, open_store, save_case
from fhir_cm.sync import push_pending

pytestmark = pytest.mark.server
TODAY = dt.date.today()


def _readmitted(case_id: str, patient_id: str) -> Case:
    """An open case whose patient was readmitted within 30 days this year: eligible but for the case."""
    day = TODAY - dt.timedelta(days=60)
    stays = [
        Stay(id=f"{case_id}-s1", setting="acute-hospital", start=day, end=day + dt.timedelta(days=4)),
        Stay(
            id=f"{case_id}-s2",
            setting="acute-hospital",
            start=day + dt.timedelta(days=20),
            end=day + dt.timedelta(days=24),
            discharge_disposition="home",
        ),
    ]
    return Case(
        id=case_id,
        programme="health-care",
        status="active",
        period=Period(start=day - dt.timedelta(days=30)),
        patient=Party(kind="patient", id=patient_id, name="Ada Quill"),
        stays=stays,
    )


async def test_the_patient_of_a_pushed_open_case_is_not_a_candidate_under_the_servers_id(
    tmp_path: Path, fhir_server: str
) -> None:
    # After `fhir-cm demo --fhir-base URL`, `fhir-cm identify` listed the demo's open cases' patients
    # as candidates (the server knows them by ids of its own), and --enrol opened a second case each.
    tag = uuid.uuid4().hex
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'store.db'}", fhir_base=fhir_server, identifier_system=f"urn:t:{tag}"
    )
    case = _readmitted(f"case-{tag[:12]}", f"pat-{tag[:12]}")
    with open_store(settings.database_url) as store:
        with store.session() as s:
            save_case(s, case)
        async with AsyncFhirClient(fhir_server) as client:
            assert (await push_pending(store, client, settings)).ok
        with store.session(read_only=True) as s:
            patient = get_ledger(s, fhir_server, "Patient", case.patient.id)
        assert patient is not None and patient.server_id is not None
        on_server = patient.server_id

        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as reader:
            report = await screen_population(store, reader, use_export=False, as_of=TODAY)
        with store.session(read_only=True) as s:
            candidates = {c.patient_id for c in list_candidates(s, fhir_server, limit=100_000)}
        enrolled = enrol_candidates(store, fhir_server, patient_ids=[on_server], as_of=TODAY)
        with store.session(read_only=True) as s:
            cases = [c.id for c in list_cases(s)]

    assert on_server not in candidates
    assert report.excluded_open_case >= 1
    assert enrolled.enrolled == [] and cases == [case.id]  # no second case for the same person
