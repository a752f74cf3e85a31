"""Screening a seeded population on a real server, read by paged searches (the fallback every server
offers), kept as facts in the store, ranked; incremental on the second run; enrolment of the best.

The server is shared by the session, so the population is tagged with the test's own patient ids
and the candidates are compared among them. (HAPI's ``$export`` path is in ``test_screening_hapi``.)
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from fhir_cm.domain import CaseStatus
from fhir_cm.fhir import AsyncFhirClient, BulkExportFailed, BulkSettings
from fhir_cm.identify import enrol_candidates, screen_population
from fhir_cm.store import Store, get_case, list_candidates, list_outbox, open_store

from .population import PROFILES, patient, population, screen, transaction

pytestmark = pytest.mark.server
TODAY = dt.date.today()
EXACT = BulkSettings(search_overlap=0)
EXPORT_SETTINGS = BulkSettings(poll_interval=0.25, max_retry_after=0.25, max_wait=300)


@pytest.fixture
def store(tmp_path: Any) -> Any:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


def ours(store: Store, server: str, prefix: str) -> dict[str, set[str]]:
    with store.session(read_only=True) as s:
        found = list_candidates(s, server, limit=100_000)
    return {c.patient_id: {r["reason"] for r in c.reasons} for c in found if c.patient_id.startswith(prefix)}


async def test_search_screening_finds_exactly_the_eligible_then_reads_only_changes(
    fhir_server: str, store: Store
) -> None:
    prefix = f"scr-{uuid.uuid4().hex[:8]}"
    seeded = list(population(prefix, 2, TODAY))
    expected = {pid: set(PROFILES[profile]) for pid, profile, _ in seeded if PROFILES[profile]}
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction([r for _, _, resources in seeded for r in resources])["entry"])

        first = await screen_population(store, fhir, use_export=False, as_of=TODAY)
        assert first.source == "search" and first.since is None
        assert ours(store, fhir.base_url, prefix) == expected

        # A negative screen turns positive; a patient with one admission gets a second.
        flipped = f"{prefix}-negative-screen-0"
        again = f"{prefix}-one-admission-1"
        changed = [screen(flipped, TODAY - dt.timedelta(days=3), positive=True, rid=f"{flipped}-r1")]
        admission = next(r for pid, _, rs in seeded if pid == again for r in rs if r["resourceType"] == "Encounter")
        second_stay = {
            **admission,
            "id": f"{again}-r9",
            "period": {"start": (TODAY - dt.timedelta(days=20)).isoformat()},
        }
        await fhir.transaction(transaction([*changed, second_stay])["entry"])

        # No overlap here (the default re-reads the last minute, all of this test): only the changes.
        second = await screen_population(store, fhir, use_export=False, as_of=TODAY, bulk_settings=EXACT)
    assert second.since == first.transaction_time
    # Only what changed since the first run is read (the server is shared: others' changes may show too).
    assert second.read.get("Observation", 0) >= 1 and second.read.get("Encounter", 0) >= 1
    assert (
        sum(second.read.values()) < sum(first.read.values()) and second.read.get("Patient", 0) < first.read["Patient"]
    )
    assert second.patients >= first.patients  # everyone is ranked again, from the store
    expected[flipped] = {"social-needs"}
    expected[again] = {"frequent-admissions"}
    assert ours(store, fhir.base_url, prefix) == expected


async def test_enrolment_makes_referred_cases_once_with_their_reasons(fhir_server: str, store: Store) -> None:
    prefix = f"enr-{uuid.uuid4().hex[:8]}"
    seeded = list(population(prefix, 1, TODAY))
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction([r for _, _, resources in seeded for r in resources])["entry"])
        await screen_population(store, fhir, use_export=False, as_of=TODAY)
        server = fhir.base_url
    high_risk, chronic, nobody = f"{prefix}-high-risk-0", f"{prefix}-chronic-0", f"{prefix}-nothing-0"

    report = enrol_candidates(store, server, patient_ids=[high_risk, chronic, nobody], as_of=TODAY)

    assert {e.patient_id for e in report.enrolled} == {high_risk, chronic}
    assert report.skipped == {nobody: "not a candidate of the last screening of this server"}
    with store.session(read_only=True) as s:
        cases = {e.patient_id: get_case(s, e.case_id) for e in report.enrolled}
        queued = {i.case_id for i in list_outbox(s)}
    for patient_id, case in cases.items():
        assert case is not None and case.status is CaseStatus.REFERRED and case.patient.id == patient_id
        assert case.id in queued
    assert [r.value for r in cases[high_risk].eligibility] == ["complex-condition"]
    assert [r.value for r in cases[chronic].eligibility] == ["multiple-comorbidities"]

    again = enrol_candidates(store, server, patient_ids=[high_risk], as_of=TODAY)
    assert again.enrolled == [] and again.skipped == {high_risk: "already in an open case"}
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        rerun = await screen_population(store, fhir, use_export=False, as_of=TODAY)
    assert high_risk not in ours(store, server, prefix) and rerun.excluded_open_case >= 2


async def test_an_export_keeps_the_screens_of_every_panel(fhir_server: str, store: Store) -> None:
    """The export narrowed Observations with one ``_typeFilter`` query, ``Observation?code=<HRSN>,<PRAPARE>``:
    the IG's ``_typeFilter`` is itself a comma-separated list of queries, so a server read it as two — the
    first keeping the AHC HRSN screens only, the second no query at all — and every PRAPARE screen was
    left out of the export, with the social needs it showed. The comma within the query is encoded."""
    prefix = f"pnl-{uuid.uuid4().hex[:8]}"
    hrsn, prapare = f"{prefix}-hrsn", f"{prefix}-prapare"
    resources = [
        patient(hrsn),
        screen(hrsn, TODAY - dt.timedelta(days=10), positive=True),
        patient(prapare),
        screen(prapare, TODAY - dt.timedelta(days=10), positive=True, panel="93025-5"),
    ]
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction(resources)["entry"])
        report = await screen_population(
            store,
            fhir,
            use_export=True,
            as_of=TODAY,
            bulk_settings=BulkSettings(poll_interval=0.25, max_retry_after=0.25, max_wait=300),
        )
    assert report.source == "export"
    assert ours(store, fhir.base_url, prefix) == {hrsn: {"social-needs"}, prapare: {"social-needs"}}


async def test_a_group_the_server_does_not_have_is_said_so(fhir_server: str, store: Store) -> None:
    """A mistyped ``--group``: the server answers the kick-off 404, which read as a server without
    ``$export`` ("the server offers no $export"), sending the engineer to a server that has one."""
    missing = f"no-such-{uuid.uuid4().hex[:8]}"
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        with pytest.raises(BulkExportFailed, match=f"the server has no Group '{missing}'"):
            await screen_population(store, fhir, group=missing, as_of=TODAY, bulk_settings=EXPORT_SETTINGS)
