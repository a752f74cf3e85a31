"""An update pull (a second pull after the hospital changed part of a case) keeps what the case's other
stored resources write as a year or a month: the merge saves the case with the dates as written of
all its resources, not only of those it takes in."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case_record, get_resource, put_resources, stored_dates_as_written
from fhir_cm.sync import pull
from tests.sync.seeding import seed_case
from tests.sync.test_pull_server import a_case, stored

pytestmark = pytest.mark.server


def _due(goal: dict[str, Any], date: str) -> dict[str, Any]:
    """A Goal's JSON, due on ``date`` as written (a day, a month)."""
    return {**goal, "target": [{**goal["target"][0], "dueDate": date}]}


def _written(store: Store, case_id: str, system: str) -> tuple[int, dict[str, str], dict[str, str]]:
    """The case's revision, the dates as written kept with it, and those its stored resources say now."""
    with store.session(read_only=True) as s:
        record = get_case_record(s, case_id)
        assert record is not None
        return record.revision, record.dates_as_written, stored_dates_as_written(s, record.case, system)


async def test_an_update_pull_of_one_resource_keeps_the_dates_the_case_s_other_resources_write_as_written(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    episode = {**seeded[f"EpisodeOfCare/{case.id}"], "period": {"start": "2024"}}
    del episode["statusHistory"]  # else it says the day the episode began
    await raw.update(episode)
    await raw.update(_due(seeded["Goal/goal-1"], "2024-06"))
    assert (await pull(store, raw, settings)).quarantined == 0
    revision, kept, _ = _written(store, case.id, settings.identifier_system)
    due = f"/goals/{[g.id for g in stored(store, case.id).goals].index('goal-1')}/due"
    assert (kept.get("/period/start"), kept.get(due)) == ("2024", "2024-06")

    # The hospital changes a contact's words, nothing else: the case is updated, its other dates as they were written.
    contact = await raw.read("Communication", seeded["Communication/contact-1"]["id"])
    await raw.update({**contact, "payload": [{"contentString": "Called back about the plan."}]})
    report = await pull(store, raw, settings)

    assert (report.quarantined, report.updated_cases) == (0, 1)
    later, kept_after, worked_out = _written(store, case.id, settings.identifier_system)
    assert later > revision and kept_after == kept == worked_out


async def test_an_update_pull_keeps_a_date_as_written_by_a_stored_copy_the_server_s_copy_does_not_match(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """The store's copy of a resource is not always the server's last one (a file import of the
    hospital's own copy, say): what it writes as a month counts, as the store holds it."""
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    await raw.update(_due(await raw.read("Goal", seeded["Goal/goal-1"]["id"]), "2024-06-30"))
    assert (await pull(store, raw, settings)).quarantined == 0
    with store.session() as s:  # as an import of the hospital's copy leaves it: the month, not the day
        held = get_resource(s, "Goal", "goal-1")
        assert held is not None and held.case_id == case.id
        put_resources(s, case.id, [("goal-1", _due(held.raw, "2024-06"))], fhir_version=held.fhir_version)
    due = f"/goals/{[g.id for g in stored(store, case.id).goals].index('goal-1')}/due"

    contact = await raw.read("Communication", seeded["Communication/contact-1"]["id"])
    await raw.update({**contact, "payload": [{"contentString": "Called back about the plan."}]})
    report = await pull(store, raw, settings)

    assert (report.quarantined, report.updated_cases) == (0, 1)
    _, kept, worked_out = _written(store, case.id, settings.identifier_system)
    assert kept.get(due) == "2024-06" and kept == worked_out
