"""Resolving a conflict end to end on the real R4 server: pull finds it, a person decides, push applies it."""

from __future__ import annotations

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import GoalAchievement
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import ResourceKey
from fhir_cm.store import Store, list_conflicts, save_case
from fhir_cm.sync import pull, push_pending, resolve
from tests.sync.seeding import seed_case
from tests.sync.test_pull_server import a_case, edit_on_server, stored, with_goal

pytestmark = pytest.mark.server

GOAL_1 = ResourceKey("Goal", "goal-1")


async def a_conflict(store: Store, raw: AsyncFhirClient, settings: Settings) -> tuple[str, str, int]:
    """goal-1 improving locally (waiting to be pushed), achieved on the server; pulled: one conflict.
    Returns ``(case id, the Goal's server id, conflict id)``."""
    case = a_case()
    # The EHR's Patient, under the id the case knows: the pusher finds it and changes no reference.
    await raw.update({"resourceType": "Patient", "id": case.patient.id, "active": True}, versioned=False)
    seeded = await seed_case(raw, case, settings.identifier_system)
    await pull(store, raw, settings)
    with store.session() as s:
        save_case(s, with_goal(case, "goal-1", achievement=GoalAchievement.IMPROVING))
    await edit_on_server(raw, settings, with_goal(case, "goal-1", achievement=GoalAchievement.ACHIEVED), seeded, GOAL_1)
    report = await pull(store, raw, settings)
    assert report.conflicts == 1
    with store.session(read_only=True) as s:
        (conflict,) = list_conflicts(s, case_id=case.id)
    return case.id, seeded["Goal/goal-1"]["id"], conflict.id


def achievement(goal: dict) -> str:
    return goal["achievementStatus"]["coding"][0]["code"]


async def test_keep_local_pushes_the_local_value_over_the_server_edit(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    case_id, goal_id, conflict_id = await a_conflict(store, raw, settings)
    before = await raw.read("Goal", goal_id)

    resolve(store, conflict_id, "local", resolved_by="cm-1")
    pushed = await push_pending(store, client, settings)

    assert pushed.ok, pushed.failures
    assert (pushed.created, pushed.updated, pushed.conflicts) == (0, 1, 0)  # the Goal, nothing else
    after = await raw.read("Goal", goal_id)
    assert achievement(before) == "achieved" and achievement(after) == "improving"
    assert int(after["meta"]["versionId"]) == int(before["meta"]["versionId"]) + 1  # If-Match over that copy
    goals = {g.id: g.achievement for g in stored(store, case_id).goals}
    assert goals["goal-1"] is GoalAchievement.IMPROVING


async def test_keep_server_pushes_nothing(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    case_id, goal_id, conflict_id = await a_conflict(store, raw, settings)
    before = await raw.read("Goal", goal_id)

    resolve(store, conflict_id, "server")
    pushed = await push_pending(store, client, settings)

    assert pushed.ok, pushed.failures
    assert (pushed.created, pushed.updated, pushed.provenances) == (0, 0, 0)
    after = await raw.read("Goal", goal_id)
    assert after["meta"]["versionId"] == before["meta"]["versionId"] and achievement(after) == "achieved"
    assert {g.id: g.achievement for g in stored(store, case_id).goals}["goal-1"] is GoalAchievement.ACHIEVED
