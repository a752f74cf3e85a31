"""Screens whose answers are member Observations, as the Gravity SDOH Clinical Care IG and US Core's
SDOH assessments record them: a panel Observation (AHC HRSN 96777-8, PRAPARE 93025-5) with no value of
its own, listing in ``hasMember`` one Observation per item, coded with the item's LOINC and answered
by ``valueCodeableConcept``. Only the panels' codes are exported or searched; the members are read by
id with them, so a positive answer in a member makes the screen positive, on real servers, by
``$export`` and by paged searches alike."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from fhir_cm.fhir import AsyncFhirClient, BulkSettings
from fhir_cm.identify import screen_population

from fhir_cm.store import Store, list_candidates, open_store

from .population import patient, transaction

pytestmark = pytest.mark.server
TODAY = dt.date.today()
LOINC = "http://loinc.org"
EXPORT = BulkSettings(poll_interval=0.25, max_retry_after=0.25, max_wait=300, search_overlap=0)
CATEGORIES = [
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "social-history"}]},
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]},
]


@pytest.fixture
def store(tmp_path: Any) -> Any:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


def observation(pid: str, rid: str, code: str, **rest: Any) -> dict[str, Any]:
    """An Observation as Gravity's SDOHCC ObservationScreeningResponse examples write one."""
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": CATEGORIES,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": (TODAY - dt.timedelta(days=12)).isoformat(),
        **rest,
    }


def item(pid: str, rid: str, code: str, answer: str, display: str) -> dict[str, Any]:
    """One item's answer."""
    return observation(
        pid, rid, code, valueCodeableConcept={"coding": [{"system": LOINC, "code": answer, "display": display}]}
    )


def panel(pid: str, rid: str, members: list[str], code: str = "96777-8") -> dict[str, Any]:
    """The grouping Observation: no value, no interpretation, its answers in ``hasMember``."""
    return observation(pid, rid, code, hasMember=[{"reference": f"Observation/{m}"} for m in members])


def transport(pid: str, answer: str) -> list[dict[str, Any]]:
    """A patient and their answer to the transportation question."""
    return [patient(pid), item(pid, f"{pid}-transport", "93030-5", answer, "an answer")]


def population(prefix: str) -> tuple[list[dict[str, Any]], set[str]]:
    """Patients whose screens say yes only in a member, or no in every member, or yes in a member
    that is another patient's; sixty members of positive screens, more than one batch of ids."""
    resources: list[dict[str, Any]] = []
    positive: set[str] = set()
    for n in range(30):
        pid = f"{prefix}-yes-{n}"
        code = "93025-5" if n % 2 else "96777-8"
        resources += [
            patient(pid),
            item(pid, f"{pid}-food", "88122-7", "LA28399-6", "Never true"),
            item(pid, f"{pid}-transport", "93030-5", "LA33-6", "Yes"),
            panel(pid, f"{pid}-panel", [f"{pid}-food", f"{pid}-transport"], code),
        ]
        positive.add(pid)
    no, other = f"{prefix}-no", f"{prefix}-other"
    resources += [
        patient(no),
        item(no, f"{no}-transport", "93030-5", "LA32-8", "No"),
        panel(no, f"{no}-panel", [f"{no}-transport"]),
        patient(other),  # lists the first patient's positive answer as its own member
        panel(other, f"{other}-panel", [f"{prefix}-yes-0-transport"]),
    ]
    return resources, positive


def ours(store: Store, server: str, prefix: str) -> set[str]:
    with store.session(read_only=True) as s:
        found = list_candidates(s, server, limit=100_000)
    return {c.patient_id for c in found if c.patient_id.startswith(prefix)}


@pytest.mark.parametrize("use_export", [True, False], ids=["export", "search"])
async def test_a_positive_answer_in_a_member_makes_the_screen_positive(
    fhir_server: str, store: Store, use_export: bool
) -> None:
    prefix = f"mbr-{uuid.uuid4().hex[:8]}"
    resources, positive = population(prefix)
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction(resources)["entry"])
        report = await screen_population(store, fhir, use_export=use_export, as_of=TODAY, bulk_settings=EXPORT)

        assert report.source == ("export" if use_export else "search")
        assert ours(store, fhir.base_url, prefix) == positive

        # An answer amended from yes to no with its panel re-recorded: the screen is negative now.
        first = f"{prefix}-yes-1"
        amended = [
            item(first, f"{first}-transport", "93030-5", "LA32-8", "No"),
            {
                **panel(first, f"{first}-panel", [f"{first}-food", f"{first}-transport"], "93025-5"),
                "issued": "2026-01-01T00:00:00Z",
            },
        ]
        await fhir.transaction(transaction(amended)["entry"])
        await screen_population(store, fhir, use_export=use_export, as_of=TODAY, bulk_settings=EXPORT)
    assert ours(store, fhir.base_url, prefix) == positive - {first}


@pytest.mark.parametrize("use_export", [True, False], ids=["export", "search"])
async def test_an_answer_in_a_section_of_the_panel_counts(fhir_server: str, store: Store, use_export: bool) -> None:
    """PRAPARE's LOINC panel is made of sections (93041-2 "Money and resources", 93043-8 "Personal
    characteristics", ...), and a screen recorded by that structure groups its answers by section:
    the panel's members are the sections, their members the answers. A yes two levels down counts; a
    section whose answers are all no, and one that lists itself, do not."""
    prefix = f"sec-{uuid.uuid4().hex[:8]}"
    yes, no = f"{prefix}-yes", f"{prefix}-no"
    resources: list[dict[str, Any]] = []
    for pid, answer in ((yes, "LA33-6"), (no, "LA32-8")):
        resources += [
            *transport(pid, answer),
            panel(pid, f"{pid}-money", [f"{pid}-transport"], "93041-2"),
            panel(pid, f"{pid}-self", [f"{pid}-self"], "93043-8"),
            panel(pid, f"{pid}-panel", [f"{pid}-self", f"{pid}-money"], "93025-5"),
        ]
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction(resources)["entry"])
        await screen_population(store, fhir, use_export=use_export, as_of=TODAY, bulk_settings=EXPORT)
        assert ours(store, fhir.base_url, prefix) == {yes}


@pytest.mark.parametrize("use_export", [True, False], ids=["export", "search"])
async def test_an_answer_amended_alone_is_read_by_the_next_incremental_run(
    fhir_server: str, store: Store, use_export: bool
) -> None:
    """An answer amended on its own, its panel untouched, was not read by an incremental run (the
    export and the searches asked for the panels' codes only) until its panel was re-read: the screen
    stayed as it was. The questions' codes are read with the panels', and the ranking judges each
    panel again from its answers' facts."""
    prefix = f"amd-{uuid.uuid4().hex[:8]}"
    yes, no = f"{prefix}-yes", f"{prefix}-no"
    resources: list[dict[str, Any]] = []
    for pid, answer in ((yes, "LA33-6"), (no, "LA32-8")):
        resources += [*transport(pid, answer), panel(pid, f"{pid}-panel", [f"{pid}-transport"])]
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction(resources)["entry"])
        first = await screen_population(store, fhir, use_export=use_export, as_of=TODAY, bulk_settings=EXPORT)
        assert ours(store, fhir.base_url, prefix) == {yes}

        amended = [
            item(yes, f"{yes}-transport", "93030-5", "LA32-8", "No"),
            item(no, f"{no}-transport", "93030-5", "LA33-6", "Yes"),
        ]
        await fhir.transaction(transaction(amended)["entry"])
        second = await screen_population(store, fhir, use_export=use_export, as_of=TODAY, bulk_settings=EXPORT)
    assert second.since == first.transaction_time
    assert ours(store, fhir.base_url, prefix) == {no}


@pytest.mark.parametrize("use_export", [True, False], ids=["export", "search"])
async def test_an_answer_recorded_with_no_panel_is_a_screen(fhir_server: str, store: Store, use_export: bool) -> None:
    """US Core's SDOH assessments and Gravity's let a screen be recorded as its answers alone (category
    ``survey``, coded with the question). Such an answer answered with a need counts as a screen of
    the panel whose question it answers — read in full and incrementally — and one of a panel
    entered in error does not."""
    prefix = f"aln-{uuid.uuid4().hex[:8]}"
    housed, homeless, voided, later = (f"{prefix}-{n}" for n in ("housed", "homeless", "voided", "later"))
    resources = [
        patient(housed),
        item(housed, f"{housed}-living", "71802-3", "LA31993-1", "I have a steady place to live"),
        patient(homeless),
        item(homeless, f"{homeless}-living", "71802-3", "LA31995-6", "I do not have a steady place to live"),
        patient(voided),
        item(voided, f"{voided}-transport", "93030-5", "LA33-6", "Yes"),
        {**panel(voided, f"{voided}-panel", [f"{voided}-transport"]), "status": "entered-in-error"},
        patient(later),
    ]
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction(resources)["entry"])
        await screen_population(store, fhir, use_export=use_export, as_of=TODAY, bulk_settings=EXPORT)
        assert ours(store, fhir.base_url, prefix) == {homeless}

        answered = item(later, f"{later}-transport", "93030-5", "LA30133-5", "Yes, kept me from appointments")
        await fhir.transaction(transaction([answered])["entry"])
        second = await screen_population(store, fhir, use_export=use_export, as_of=TODAY, bulk_settings=EXPORT)
    assert second.since is not None and second.read == {"Observation": 1}
    assert ours(store, fhir.base_url, prefix) == {homeless, later}
