"""Partial dates a hospital writes ("2024", "2024-06"), pulled from the real server and pushed back."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import GoalStatus, Party
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, save_case
from fhir_cm.sync import pull, push_pending
from tests.mapping.builders import full_case
from tests.sync.seeding import seed_case
from tests.sync.test_pull_server import stored

pytestmark = pytest.mark.server


async def test_a_case_dated_by_year_and_month_is_read_and_pushed_back_as_the_hospital_wrote_it(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = full_case(
        id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"pat-{uuid.uuid4().hex[:12]}")
    )
    seeded = await seed_case(raw, case, settings.identifier_system)
    # The hospital's own copies say only the year the episode began (and keep no status history
    # that would say the day), the month a goal is due, and the months of a stay: valid FHIR dates,
    # each a span rather than a day.
    episode = {**seeded[f"EpisodeOfCare/{case.id}"], "period": {"start": "2024"}}
    del episode["statusHistory"]
    goal = seeded["Goal/goal-1"]
    goal = {**goal, "target": [{**goal["target"][0], "dueDate": "2024-06"}]}
    stay = seeded["Encounter/stay-1"]
    stay = {**stay, "period": {"start": "2023-12", "end": "2024-01"}}
    for resource in (episode, goal, stay):
        await raw.update(resource)

    report = await pull(store, raw, settings)

    assert (report.quarantined, report.new_cases) == (0, 1)
    held = stored(store, case.id)
    assert held.period.start == dt.date(2024, 1, 1)  # sorts and filters as the year's start
    assert {g.id: g.due for g in held.goals}["goal-1"] == dt.date(2024, 6, 30)  # due by the end of June
    (read_stay,) = held.stays
    assert (read_stay.start, read_stay.end) == (dt.date(2023, 12, 1), dt.date(2024, 1, 31))

    # A local change elsewhere in the case is pushed; the dates it did not change keep their precision.
    goals = [g.model_copy(update={"status": GoalStatus.COMPLETED}) if g.id == "goal-2" else g for g in held.goals]
    with store.session() as s:
        save_case(s, held.model_copy(update={"goals": goals}))
    pushed = await push_pending(store, client, settings)

    assert (pushed.failed, pushed.conflicts) == (0, 0) and pushed.updated >= 1
    assert (await raw.read("EpisodeOfCare", episode["id"]))["period"] == {"start": "2024"}
    assert (await raw.read("Goal", goal["id"]))["target"][0]["dueDate"] == "2024-06"
    assert (await raw.read("Encounter", stay["id"]))["period"] == {"start": "2023-12", "end": "2024-01"}
    assert (await raw.read("Goal", seeded["Goal/goal-2"]["id"]))["lifecycleStatus"] == "completed"
