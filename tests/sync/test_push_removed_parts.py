"""What the server holds after a part of a case is removed and the case pushed again (sekmet, HAPI)."""

from __future__ import annotations

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import careplan_key
from fhir_cm.store import Store
from fhir_cm.sync import push_cases
from fhir_cm.synthetic import generate_cases
from tests.sync.server_state import server_state

pytestmark = pytest.mark.server


async def test_a_goal_removed_from_the_case_leaves_the_care_plan_on_the_server(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, system: str
) -> None:
    case = next(c for c in generate_cases(6, seed=77) if len(c.goals) >= 2)
    await push_cases(store, client, settings, [case])
    state = await server_state(raw, system)
    goal_ids = {g.id: state.resources[("Goal", g.id)][0]["id"] for g in case.goals}
    removed, kept = case.goals[0], case.goals[1:]

    less: Case = case.model_copy(update={"goals": kept})
    await push_cases(store, client, settings, [less])

    plan = (await server_state(raw, system)).resources[(careplan_key(less).type, careplan_key(less).value)][0]
    listed = {g["reference"] for g in plan.get("goal", [])}
    assert f"Goal/{goal_ids[removed.id]}" not in listed
    assert listed == {f"Goal/{goal_ids[g.id]}" for g in kept}
