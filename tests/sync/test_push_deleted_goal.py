"""A goal deleted on the server while the case changed it, let go (``resolve … server``): the case's
CarePlan, written again over the server's copy, no longer lists it — a plan naming a goal that is
neither in the case nor on the server would show the hospital a goal no longer in the plan (and a
server checking references refuses the plan). On sekmet: HAPI refuses to delete a Goal a CarePlan
names (referential integrity), so there it cannot happen."""

from __future__ import annotations

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import GoalStatus
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import careplan_key
from fhir_cm.store import Store, list_conflicts, save_case
from fhir_cm.sync import push_pending, resolve
from tests.sync.server_state import server_state
from tests.sync.test_pull_server import a_case, stored, with_goal

pytestmark = pytest.mark.server


@pytest.fixture
def fhir_server(sekmet_base: str) -> str:
    return sekmet_base


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"push_provenance": False})  # a Provenance would name the goal too


async def test_a_goal_let_go_after_the_server_deleted_it_leaves_the_care_plan(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = a_case()
    with store.session() as s:
        save_case(s, case)
    assert (await push_pending(store, client, settings)).ok
    state = await server_state(raw, settings.identifier_system)
    gone, kept = state.one("Goal", "goal-1"), state.one("Goal", "goal-2")
    await raw.delete("Goal", gone["id"])
    with store.session() as s:
        save_case(s, with_goal(case, "goal-1", status=GoalStatus.ON_HOLD))
    assert (await push_pending(store, client, settings)).conflicts == 1
    with store.session(read_only=True) as s:
        (conflict,) = list_conflicts(s, case_id=case.id)

    resolve(store, conflict.id, "server")
    pushed = await push_pending(store, client, settings)

    assert pushed.ok, pushed.failures
    assert [g.id for g in stored(store, case.id).goals] == ["goal-2"]
    plan = (await server_state(raw, settings.identifier_system)).one(*careplan_key(case))
    assert [g["reference"] for g in plan["goal"]] == [f"Goal/{kept['id']}"]
