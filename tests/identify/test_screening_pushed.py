"""Screening a server the cases were pushed to: a case's patient is the one the server holds, under
whatever id the server gave it (sekmet chooses its own; HAPI takes ours)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, CaseStatus, Party, Period, Stay
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.identify import enrol_candidates, screen_population
from fhir_cm.store import (
    CandidateRecord,
    Store,
    get_ledger,
    list_candidates,
    list_cases,
    open_case_patient_ids,
    open_store,
    replace_candidates,
    save_case,
)
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


def _settings(tmp_path: Path, base: str) -> tuple[Settings, str]:
    """A store of its own, syncing with ``base`` under a system of its own; and the tag of both."""
    tag = uuid.uuid4().hex
    url = f"sqlite:///{tmp_path / 'store.db'}"
    return Settings(database_url=url, fhir_base=base, identifier_system=f"urn:t:{tag}"), tag


async def _push(store: Store, settings: Settings, case: Case) -> str:
    """Save and push the case; the id the server knows its patient by."""
    assert settings.fhir_base is not None
    with store.session() as s:
        save_case(s, case)
    async with AsyncFhirClient(settings.fhir_base) as client:
        assert (await push_pending(store, client, settings)).ok
    with store.session(read_only=True) as s:
        patient = get_ledger(s, settings.fhir_base, "Patient", case.patient.id)
    assert patient is not None and patient.server_id is not None
    return patient.server_id


async def test_the_patient_of_a_pushed_open_case_is_not_a_candidate_under_the_servers_id(
    tmp_path: Path, fhir_server: str
) -> None:
    # After `fhir-cm demo --fhir-base URL`, `fhir-cm identify` listed the demo's open cases' patients
    # as candidates (the server knows them by ids of its own), and --enrol opened a second case each.
    settings, tag = _settings(tmp_path, fhir_server)
    case = _readmitted(f"case-{tag[:12]}", f"pat-{tag[:12]}")
    with open_store(settings.database_url) as store:
        on_server = await _push(store, settings, case)

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


async def test_the_servers_patient_of_our_id_is_not_enrolled_as_our_patient_pushed_under_another(
    tmp_path: Path, sekmet_base: str
) -> None:
    # sekmet gave our "pat-…" an id of its own; its own "pat-…", found eligible by screening, read as
    # in our patient's case (left out of screening, wrongly) and — once that case closed — would be
    # enrolled under the id: a second case of our patient, whose push would name our patient's Patient.
    settings, tag = _settings(tmp_path, sekmet_base)
    ours = f"pat-{tag[:12]}"
    case = _readmitted(f"case-{tag[:12]}", ours)
    with open_store(settings.database_url) as store:
        theirs = await _push(store, settings, case)
        assert theirs != ours
        with store.session() as s:
            assert open_case_patient_ids(s, [ours, theirs], server_base=sekmet_base) == {theirs}
            closed = case.model_copy(
                update={"status": CaseStatus.CLOSED, "period": Period(start=case.period.start, end=TODAY)}
            )
            save_case(s, Case.model_validate(closed.model_dump()))
            found = CandidateRecord(server_base=sekmet_base, patient_id=ours, score=5, reasons=[], assessed_on=TODAY)
            replace_candidates(s, sekmet_base, [ours], [found])
        enrolled = enrol_candidates(store, sekmet_base, patient_ids=[ours], as_of=TODAY)
        with store.session(read_only=True) as s:
            cases = [c.id for c in list_cases(s)]

    assert enrolled.enrolled == [] and "another id" in enrolled.skipped[ours]
    assert cases == [case.id]
