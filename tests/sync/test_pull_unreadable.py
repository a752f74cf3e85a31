"""A pull meeting a stored case this version's model cannot read (stored before a rule of it): the
other cases come in, and that case's resources are quarantined with the reason — never merged into
(and so written over) a case that could not be read."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fhir_cm.config import Settings
from fhir_cm.domain import GoalAchievement
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import ResourceKey
from fhir_cm.store import Store, list_quarantine
from fhir_cm.store._tables import CaseRow
from fhir_cm.sync import pull
from fhir_cm.synthetic import generate_cases
from tests.sync.seeding import seed_case
from tests.sync.test_pull_server import a_case, edit_on_server, stored, with_goal
from tests.unreadable import SECRET_NOTE, make_unreadable

pytestmark = pytest.mark.server


def _row(store: Store, case_id: str) -> tuple[int, object]:
    with store.session(read_only=True) as s:
        row = s.execute(select(CaseRow.revision, CaseRow.data).where(CaseRow.case_id == case_id)).one()
    return row.revision, row.data


async def test_the_others_come_in_and_its_server_edits_are_quarantined(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    bad = a_case()
    [good] = [c for c in generate_cases(1, seed=8) if c.goals]
    bad_seeded = await seed_case(raw, bad, settings.identifier_system)
    good_seeded = await seed_case(raw, good, settings.identifier_system)
    await pull(store, raw, settings)
    good = stored(store, good.id)
    make_unreadable(store, bad.id)
    before = _row(store, bad.id)
    changed = with_goal(bad, "goal-1", achievement=GoalAchievement.ACHIEVED)
    await edit_on_server(raw, settings, changed, bad_seeded, ResourceKey("Goal", "goal-1"))
    achieved = with_goal(good, good.goals[0].id, achievement=GoalAchievement.ACHIEVED)
    await edit_on_server(raw, settings, achieved, good_seeded, ResourceKey("Goal", good.goals[0].id))

    report = await pull(store, raw, settings)

    assert (report.cases, report.quarantined) == ([good.id], 1)
    assert stored(store, good.id) == achieved
    assert _row(store, bad.id) == before
    with store.session(read_only=True) as s:
        [held] = list_quarantine(s)
    assert held.resource_type == "Goal" and bad.id in held.reason and "fhir-cm check" in held.reason
    assert SECRET_NOTE not in held.reason


async def test_the_transition_tracker_names_it_and_tracks_the_others(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    from fhir_cm.store import save_case
    from fhir_cm.sync import track_transitions

    bad, good = a_case(), a_case()
    with store.session() as s:
        save_case(s, bad, enqueue=False)
        save_case(s, good, enqueue=False)
    make_unreadable(store, bad.id)

    report = await track_transitions(store, raw, settings)

    assert list(report.failed) == [bad.id] and "fhir-cm check" in report.failed[bad.id]
    assert report.cases == 1
