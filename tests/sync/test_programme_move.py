"""A case the hospital moved to another programme (EpisodeOfCare.type) while a local change waited.

The push of the local change meets the server's newer copy and keeps its type (``_push_clashes``):
the hospital's move must then reach the case at the next pull, and no later push may put the old
programme back on the server.
"""

from __future__ import annotations

import uuid

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Acuity, Case, Party, ProgrammeType
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case, list_conflicts, save_case
from fhir_cm.sync import pull, push_pending
from tests.mapping.builders import full_case
from tests.sync.seeding import seed_case

pytestmark = pytest.mark.server

PROGRAMME = "https://fhir-cm.org/fhir/CodeSystem/programme-type"


def stored(store: Store, case_id: str) -> Case:
    with store.session(read_only=True) as s:
        case = get_case(s, case_id)
    assert case is not None
    return case


async def server_programmes(raw: AsyncFhirClient, episode_id: str) -> list[str]:
    episode = await raw.read("EpisodeOfCare", episode_id)
    return [c["code"] for t in episode.get("type", []) for c in t["coding"] if c["system"] == PROGRAMME]


async def moved_by_the_hospital(store: Store, raw: AsyncFhirClient, settings: Settings) -> tuple[Case, str]:
    """A health-care case pulled, then moved to social work on the server; the case and its episode's id."""
    case = full_case(
        id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"pat-{uuid.uuid4().hex[:12]}")
    )
    assert case.programme is ProgrammeType.HEALTH_CARE
    seeded = await seed_case(raw, case, settings.identifier_system)
    episode_id: str = seeded[f"EpisodeOfCare/{case.id}"]["id"]
    await pull(store, raw, settings)
    episode = await raw.read("EpisodeOfCare", episode_id)
    episode["type"] = [{"coding": [{"system": PROGRAMME, "code": "social-work"}]}]
    await raw.update(episode)
    return case, episode_id


async def test_a_move_the_push_kept_on_the_server_reaches_the_case_and_stays_there(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    # The hospital moves the case to social work; here, meanwhile, the acuity is raised.
    case, episode_id = await moved_by_the_hospital(store, raw, settings)
    with store.session() as s:
        save_case(s, stored(store, case.id).model_copy(update={"acuity": Acuity.INTENSIVE}))
    pushed = await push_pending(store, raw, settings)
    assert (pushed.failed, pushed.conflicts) == (0, 0)
    assert await server_programmes(raw, episode_id) == ["social-work"]  # the push kept the hospital's edit

    await pull(store, raw, settings)
    after = stored(store, case.id)
    assert (after.programme, after.acuity) == (ProgrammeType.SOCIAL_WORK, Acuity.INTENSIVE)
    with store.session(read_only=True) as s:
        assert list_conflicts(s, case_id=case.id) == []

    # The next local change goes out over the moved case: the old programme is not put back.
    with store.session() as s:
        save_case(s, after.model_copy(update={"acuity": Acuity.HIGH}))
    again = await push_pending(store, raw, settings)
    assert again.failed == 0
    assert await server_programmes(raw, episode_id) == ["social-work"]


async def test_a_move_the_push_kept_is_not_undone_by_a_push_before_the_next_pull(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case, episode_id = await moved_by_the_hospital(store, raw, settings)
    for acuity in (Acuity.INTENSIVE, Acuity.HIGH):  # two local changes, two pushes, no pull between
        with store.session() as s:
            save_case(s, stored(store, case.id).model_copy(update={"acuity": acuity}))
        pushed = await push_pending(store, raw, settings)
        assert (pushed.failed, pushed.conflicts) == (0, 0)
        assert await server_programmes(raw, episode_id) == ["social-work"]
    await pull(store, raw, settings)
    assert (stored(store, case.id).programme, stored(store, case.id).acuity) == (ProgrammeType.SOCIAL_WORK, Acuity.HIGH)
