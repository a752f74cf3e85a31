"""The searches case management and US Core clients make beyond a patient's resources: referrals by who
performs or asked for them, stays by provider, disposition, location and the days they lasted, teams by
role, goals by description.

Expectations come from the domain (a referral's target, a stay's provider and days) or from the copies
a test stores itself, never from the façade's index.
"""

# ruff: noqa: F811
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_cm.domain import Case, Party, PartyKind, Stay
from fhir_cm.mapping import ResourceKey, case_plan, case_to_resources
from fhir_cm.store import open_store, put_resources, save_case
from fhir_cm.synthetic import generate_cases

# The module-scoped ``world`` fixture of the façade tests, shared (its parameters shadow the import).
from .test_fhir_facade import READER, SYSTEM, World, facade_app, get, search_ids, world  # noqa: F401

STRICT = {**READER, "Prefer": "handling=strict"}
FHIR_TYPE = {
    PartyKind.PATIENT: "Patient",
    PartyKind.PRACTITIONER: "Practitioner",
    PartyKind.ORGANISATION: "Organization",
    PartyKind.RELATED_PERSON: "RelatedPerson",
}
OURS = "https://fhir-cm.org/fhir/CodeSystem"


def ref(party: Party) -> str:
    return f"{FHIR_TYPE[party.kind]}/{party.id}"


# --- referrals ----------------------------------------------------------------------------------------------


def found_by_party(world: World, search: str, held: list[tuple[Party | None, str]], least: int) -> dict[str, Party]:
    """Search ``search=Type/id`` for every local party ``held`` names and check each finds exactly the ids
    held with it; the parties searched, by reference (at least ``least`` of them)."""
    parties = {ref(p): p for p, _ in held if p is not None and not p.outside}
    assert len(parties) >= least
    for literal in parties:
        expected = {rid for p, rid in held if p is not None and ref(p) == literal}
        assert search_ids(world.client, f"{search}={literal}", STRICT) == expected, literal
    return parties


def test_referrals_are_found_by_who_performs_them(world: World) -> None:
    held = [(r.target, r.id) for c in world.cases for r in c.referrals]
    for target in found_by_party(world, "/fhir/ServiceRequest?performer", held, 4).values():
        expected = {rid for p, rid in held if p is not None and p.id == target.id}
        by_id = search_ids(world.client, f"/fhir/ServiceRequest?performer:{FHIR_TYPE[target.kind]}={target.id}", STRICT)
        assert by_id == expected


def test_referrals_are_found_by_who_asked_for_them_the_case_manager_unless_said(world: World) -> None:
    asked = [(r.requester or c.case_manager, r.id) for c in world.cases for r in c.referrals]
    found_by_party(world, "/fhir/ServiceRequest?requester", asked, 2)
    nobody = search_ids(world.client, "/fhir/ServiceRequest?requester=Practitioner/nobody-here", STRICT)
    assert nobody == set()


def test_referrals_of_a_patient_by_category_and_authored_take_every_date_prefix(world: World) -> None:
    """US Core's patient+category+authored with each prefix: the referrals of that patient of that
    category whose authoredOn day lies where the prefix says."""
    case = max(world.cases, key=lambda c: len(c.referrals))
    days = sorted(r.authored for r in case.referrals)
    middle = days[len(days) // 2]
    served = {r.id: get(world.client, f"/fhir/ServiceRequest/{r.id}") for r in case.referrals}
    category = next(iter(served.values()))["category"][0]["coding"][0]
    of_category = {
        r.id
        for r in case.referrals
        if any(c["code"] == category["code"] for cc in served[r.id]["category"] for c in cc["coding"])
    }
    keep = {
        "eq": lambda d: d == middle,
        "ne": lambda d: d != middle,
        "gt": lambda d: d > middle,
        "ge": lambda d: d >= middle,
        "lt": lambda d: d < middle,
        "le": lambda d: d <= middle,
        "sa": lambda d: d > middle,
        "eb": lambda d: d < middle,
    }
    base = f"/fhir/ServiceRequest?patient={case.patient.id}&category={category['system']}|{category['code']}"
    for prefix, wanted in keep.items():
        expected = {r.id for r in case.referrals if r.id in of_category and wanted(r.authored)}
        assert search_ids(world.client, f"{base}&authored={prefix}{middle}", STRICT) == expected, prefix


# --- stays --------------------------------------------------------------------------------------------------


def test_stays_are_found_by_provider_and_discharge_disposition(world: World) -> None:
    stays = [s for c in world.cases for s in c.stays]
    held = [(s.provider, s.id) for s in stays]
    for provider in found_by_party(world, "/fhir/Encounter?service-provider", held, 2).values():
        expected = {sid for p, sid in held if p is not None and p.id == provider.id}
        assert search_ids(world.client, f"/fhir/Encounter?service-provider={provider.id}", STRICT) == expected
    dispositions = {s.discharge_disposition for s in stays if s.discharge_disposition is not None}
    assert len(dispositions) > 1
    for disposition in dispositions:
        expected = {s.id for s in stays if s.discharge_disposition == disposition}
        token = f"{OURS}/discharge-disposition|{disposition.value}"
        assert search_ids(world.client, f"/fhir/Encounter?discharge-disposition={token}", STRICT) == expected
        # R5 keeps it in admission, not hospitalization.
        r5 = f"/fhir/Encounter?discharge-disposition={token}&_fhirVersion=5.0"
        assert search_ids(world.client, r5, STRICT) == expected


def test_teams_are_found_by_the_role_of_a_member(world: World) -> None:
    roles = {m.role for c in world.cases for m in c.team}
    assert len(roles) > 2
    for role in roles:
        expected = {f"{c.id}-careteam" for c in world.cases if any(m.role == role for m in c.team)}
        token = f"{OURS}/team-role|{role.value}"
        assert search_ids(world.client, f"/fhir/CareTeam?role={token}", STRICT) == expected
        assert search_ids(world.client, f"/fhir/CareTeam?role={token}&_fhirVersion=5.0", STRICT) == expected
    patient = world.cases[0].patient.id
    found = search_ids(world.client, f"/fhir/CareTeam?patient={patient}&role=116154003", STRICT)
    assert found == {f"{c.id}-careteam" for c in world.cases if c.patient.id == patient and c.team}


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@pytest.fixture
def stays_client(tmp_path: Path) -> TestClient:
    """Three cases of one stay each: A 1–10 March, B from 5 March and still under way, C 1–3 February;
    A's copy as a hospital holds it, at a Location."""
    base = list(generate_cases(3, 41))
    stays = [
        Stay(id="stay-a", setting="acute-hospital", start=_day("2025-03-01"), end=_day("2025-03-10")),
        Stay(id="stay-b", setting="skilled-nursing", status="in-progress", start=_day("2025-03-05")),
        Stay(id="stay-c", setting="acute-hospital", start=_day("2025-02-01"), end=_day("2025-02-03")),
    ]
    cases = [c.model_copy(update={"stays": [s], "referrals": []}) for c, s in zip(base, stays, strict=True)]
    store = open_store(f"sqlite:///{tmp_path / 'stays.db'}")
    with store.session() as s:
        for case in cases:
            save_case(s, Case.model_validate(case.model_dump()), enqueue=False)
        ids = {key: key.value for key, _, _ in case_plan(cases[0])}
        raw = case_to_resources(cases[0], "R4", SYSTEM, server_ids=ids)[ResourceKey("Encounter", "stay-a")]
        raw["location"] = [{"location": {"reference": "Location/ward-7"}, "status": "completed"}]
        put_resources(s, cases[0].id, [("stay-a", raw)], fhir_version="R4", source="https://hospital.example/fhir")
    return TestClient(facade_app(store))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Some of the stay lies on or after 4 March: A (to the 10th) and B (under way), not C.
        ("date=ge2025-03-04", {"stay-a", "stay-b"}),
        ("date=gt2025-03-04", {"stay-a", "stay-b"}),
        # Some of it before 3 March: A (from the 1st) and C.
        ("date=lt2025-03-03", {"stay-a", "stay-c"}),
        # In hospital on 7 and 8 March: the stays whose days reach both sides.
        ("date=ge2025-03-07&date=le2025-03-08", {"stay-a", "stay-b"}),
        # Within February, all of it: C.
        ("date=2025-02", {"stay-c"}),
        ("date=eb2025-03-01", {"stay-c"}),
        ("date=sa2025-03-04", {"stay-b"}),
        ("date=ne2025-02", {"stay-a", "stay-b"}),
    ],
)
def test_a_stay_is_dated_by_all_its_days(stays_client: TestClient, query: str, expected: set[str]) -> None:
    """FHIR's Encounter ``date`` is the stay's period; a stay under way has no end yet."""
    assert search_ids(stays_client, f"/fhir/Encounter?{query}", STRICT) == expected
    assert search_ids(stays_client, f"/fhir/Encounter?{query}&_fhirVersion=5.0", STRICT) == expected, "actualPeriod"


def test_a_stay_is_found_by_its_location_where_the_record_names_one(stays_client: TestClient) -> None:
    assert search_ids(stays_client, "/fhir/Encounter?location=Location/ward-7", STRICT) == {"stay-a"}
    assert search_ids(stays_client, "/fhir/Encounter?location=ward-7", STRICT) == {"stay-a"}
    assert search_ids(stays_client, "/fhir/Encounter?location=ward-8", STRICT) == set()


def test_a_plan_is_dated_by_the_days_it_covers(world: World) -> None:
    """CarePlan ``date`` is the plan's period: a plan still running on a day after every case began is
    found by ``ge`` that day; its start alone said none was."""
    day = max(c.period.start for c in world.cases) + dt.timedelta(days=1)
    running = {f"{c.id}-careplan" for c in world.cases if c.period.end is None or c.period.end > day}
    assert running
    assert search_ids(world.client, f"/fhir/CarePlan?date=ge{day}", STRICT) == running
    started = {f"{c.id}-careplan" for c in world.cases if c.period.start < day}
    assert search_ids(world.client, f"/fhir/CarePlan?date=lt{day}", STRICT) == started


# --- goals --------------------------------------------------------------------------------------------------


def test_a_goal_is_found_by_the_code_of_its_description(tmp_path: Path) -> None:
    cases = list(generate_cases(2, 43))
    case = next(c for c in cases if c.goals)
    goal = case.goals[0]
    code: dict[str, Any] = {
        "system": "http://snomed.info/sct",
        "code": "713458007",
        "display": "Improving functional status",
    }
    store = open_store(f"sqlite:///{tmp_path / 'goals.db'}")
    with store.session() as s:
        for c in cases:
            save_case(s, c, enqueue=False)
        ids = {key: key.value for key, _, _ in case_plan(case)}
        raw = case_to_resources(case, "R4", SYSTEM, server_ids=ids)[ResourceKey("Goal", goal.id)]
        raw["description"] = {**raw["description"], "coding": [code]}
        put_resources(s, case.id, [(goal.id, raw)], fhir_version="R4", source="https://hospital.example/fhir")
    client = TestClient(facade_app(store))
    assert search_ids(client, "/fhir/Goal?description=http://snomed.info/sct|713458007", STRICT) == {goal.id}
    assert search_ids(client, f"/fhir/Goal?patient={case.patient.id}&description=713458007", STRICT) == {goal.id}
    assert search_ids(client, "/fhir/Goal?description=281004", STRICT) == set()


# --- declared -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_metadata_declares_each_with_its_type(world: World, version: str) -> None:
    headers = {"Accept": f"application/fhir+json; fhirVersion={'5.0' if version == 'R5' else '4.0'}"}
    statement = get(world.client, "/fhir/metadata", headers)
    declared = {(r["type"], p["name"]): p["type"] for r in statement["rest"][0]["resource"] for p in r["searchParam"]}
    assert {
        k: declared.get(k)
        for k in [
            ("ServiceRequest", "performer"),
            ("ServiceRequest", "requester"),
            ("Encounter", "service-provider"),
            ("Encounter", "location"),
            ("Encounter", "discharge-disposition"),
            ("CareTeam", "role"),
            ("Goal", "description"),
        ]
    } == {
        ("ServiceRequest", "performer"): "reference",
        ("ServiceRequest", "requester"): "reference",
        ("Encounter", "service-provider"): "reference",
        ("Encounter", "location"): "reference",
        ("Encounter", "discharge-disposition"): "token",
        ("CareTeam", "role"): "token",
        ("Goal", "description"): "token",
    }


def test_an_unknown_parameter_is_still_refused_unless_lenient(world: World) -> None:
    refused = world.client.get("/fhir/ServiceRequest?performer-role=x", headers=READER)
    assert refused.status_code == 400 and refused.json()["resourceType"] == "OperationOutcome"
    lenient = world.client.get(
        "/fhir/ServiceRequest?performer-role=x", headers={**READER, "Prefer": "handling=lenient"}
    )
    assert lenient.status_code == 200
