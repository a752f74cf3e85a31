"""Pull against the real R4 server (sekmet-fhir over real HTTP): cases in, server edits in, conflicts, quarantine."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Acuity, Case, GoalAchievement, GoalStatus, Party
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import ResourceKey, case_to_resources
from fhir_cm.store import (
    Store,
    get_case,
    list_conflicts,
    list_quarantine,
    save_case,
)
from fhir_cm.sync import _pull, pull
from tests.mapping.builders import full_case
from tests.sync.seeding import fresh_settings, seed_case

pytestmark = pytest.mark.server


def a_case() -> Case:
    """The full example case, for a patient of its own (the server is shared by the session)."""
    return full_case(
        id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"pat-{uuid.uuid4().hex[:12]}")
    )


def stored(store: Store, case_id: str) -> Case:
    with store.session(read_only=True) as s:
        case = get_case(s, case_id)
    assert case is not None
    return case


async def edit_on_server(
    raw: AsyncFhirClient, settings: Settings, changed: Case, seeded: dict[str, dict[str, Any]], key: ResourceKey
) -> None:
    """Change one resource on the server the way another system using the same mapping would."""
    ids = {ResourceKey(*name.split("/", 1)): r["id"] for name, r in seeded.items()}
    base = {key: await raw.read(key.type, ids[key])}
    update = case_to_resources(changed, "R4", settings.identifier_system, base=base, server_ids=ids)[key]
    await raw.update(update)


def with_goal(case: Case, goal_id: str, **changes: Any) -> Case:
    goals = [g.model_copy(update=changes) if g.id == goal_id else g for g in case.goals]
    return case.model_copy(update={"goals": goals})


async def test_pull_creates_the_case_and_a_second_pull_changes_nothing(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    assert len(seeded) == 13

    first = await pull(store, raw, settings)
    assert (first.fetched, first.new_cases, first.quarantined, first.conflicts) == (13, 1, 0, 0)
    assert first.cases == [case.id]
    assert stored(store, case.id) == case
    assert set(first.watermarks) >= {"EpisodeOfCare", "Goal", "CareTeam", "Encounter"}

    again = await pull(store, raw, settings)
    assert (again.new_cases, again.updated_cases) == (0, 0)
    assert again.unchanged == again.fetched  # the overlap brings them back; versionIds drop them


async def test_a_server_edit_reaches_the_case(store: Store, raw: AsyncFhirClient, settings: Settings) -> None:
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    await pull(store, raw, settings)

    achieved = with_goal(case, "goal-1", achievement=GoalAchievement.ACHIEVED)
    await edit_on_server(raw, settings, achieved, seeded, ResourceKey("Goal", "goal-1"))

    report = await pull(store, raw, settings)
    assert (report.updated_cases, report.conflicts) == (1, 0)
    assert stored(store, case.id) == achieved


async def test_both_sides_changed_the_same_field_is_a_conflict_and_the_server_edit_stands(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    await pull(store, raw, settings)

    # Locally (waiting in the outbox): goal-1 improving, and the acuity raised.
    local = with_goal(case, "goal-1", achievement=GoalAchievement.IMPROVING).model_copy(
        update={"acuity": Acuity.INTENSIVE}
    )
    with store.session() as s:
        save_case(s, local)
    # On the server: goal-1 achieved, and goal-2 completed.
    server = with_goal(case, "goal-1", achievement=GoalAchievement.ACHIEVED)
    await edit_on_server(raw, settings, server, seeded, ResourceKey("Goal", "goal-1"))
    server = with_goal(server, "goal-2", status=GoalStatus.COMPLETED)
    await edit_on_server(raw, settings, server, seeded, ResourceKey("Goal", "goal-2"))

    report = await pull(store, raw, settings)
    assert report.conflicts == 1
    with store.session(read_only=True) as s:
        (conflict,) = list_conflicts(s, case_id=case.id)
    assert (conflict.resource_type, conflict.resource_key, conflict.fields) == ("Goal", "goal-1", ["achievement"])
    assert conflict.local == {"achievement": "improving"} and conflict.server == {"achievement": "achieved"}

    merged = stored(store, case.id)
    goals = {g.id: g for g in merged.goals}
    assert goals["goal-1"].achievement is GoalAchievement.ACHIEVED  # the server edit is not overwritten
    assert goals["goal-2"].status == "completed"  # the server's own change came in
    assert merged.acuity == "intensive"  # the local change the server did not touch stays
    on_server = await raw.read("Goal", seeded["Goal/goal-1"]["id"])
    assert on_server["achievementStatus"]["coding"][0]["code"] == "achieved"


async def test_a_resource_the_case_cannot_hold_is_quarantined_and_the_rest_comes_in(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = a_case()
    await seed_case(raw, case, settings.identifier_system)
    # Valid FHIR (every server and the strict model accept it) but no goal a case can hold: a
    # lifecycle status the case-management model has no place for, and no dates.
    bad = {
        "resourceType": "Goal",
        "identifier": [{"system": settings.identifier_system, "value": "goal-bad"}],
        "lifecycleStatus": "entered-in-error",
        "description": {"text": "unreadable goal"},
        "subject": {"reference": f"Patient/{case.patient.id}"},
    }
    created = await raw.create(bad)

    report = await pull(store, raw, settings)
    assert report.quarantined == 1 and report.new_cases == 1
    assert stored(store, case.id) == case
    with store.session(read_only=True) as s:
        (held,) = list_quarantine(s, source=raw.base_url)
    assert (held.resource_type, held.server_id) == ("Goal", created.id)
    assert "goal" in held.reason.lower() and "unreadable goal" not in held.reason  # why, without the content


async def test_pull_for_one_patient_takes_only_that_patient(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    mine, other = a_case(), a_case()
    await seed_case(raw, mine, settings.identifier_system)
    await seed_case(raw, other, settings.identifier_system)

    report = await pull(store, raw, settings, patient=mine.patient.id)
    assert report.cases == [mine.id]
    assert stored(store, mine.id) == mine
    assert report.watermarks == {}


async def test_a_type_of_more_pages_than_the_page_cap_is_read_to_its_end(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two pages at most, of two resources each (in place of 1,000 of 200): the two Conditions of each of
    # three cases need three pages. The pull failed with PageLimitExceeded at the same page every run,
    # the type's watermark never moved, and the types after it were never pulled.
    monkeypatch.setattr(_pull, "PAGE_SIZE", 2)
    cases = [a_case() for _ in range(3)]
    for case in cases:
        await seed_case(raw, case, settings.identifier_system)

    async with AsyncFhirClient(fhir_server, enforce_capabilities=False, max_pages=2) as capped:
        report = await pull(store, capped, settings)

    assert sorted(report.cases) == sorted(c.id for c in cases)
    assert report.fetched == 13 * 3
    assert set(report.watermarks) == set(_pull.CASE_RESOURCE_TYPES)
    assert all(stored(store, c.id) == c for c in cases)


def test_the_pull_command_prints_its_counts_as_json(tmp_path: Path, fhir_server: str) -> None:
    from typer.testing import CliRunner

    from fhir_cm.cli import app

    settings = fresh_settings(f"sqlite:///{tmp_path / 'cli.db'}", fhir_server)
    case = a_case()

    async def seed() -> None:
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
            await seed_case(raw, case, settings.identifier_system)

    asyncio.run(seed())
    env = {"FHIR_CM_DATABASE_URL": settings.database_url, "FHIR_CM_IDENTIFIER_SYSTEM": settings.identifier_system}

    result = CliRunner().invoke(app, ["pull", "--fhir-base", fhir_server, "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["pull"]["new_cases"], summary["pull"]["fetched"]) == (1, 13)
    assert summary["transitions"]["cases"] == 1  # the tracker ran for the case the pull created

    bad = CliRunner().invoke(app, ["pull", "--fhir-base", "http://127.0.0.1:9/fhir"], env=env)
    assert bad.exit_code != 0 and "error" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
