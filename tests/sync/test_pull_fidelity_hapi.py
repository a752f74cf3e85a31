"""What a hospital's resource says exactly, kept from a real server, through the store, back to it:
a decimal's precision (1.50 is not 1.5, FHIR says), an extension value's own extensions.

HAPI keeps both as written (sekmet prints a decimal as a float would, and refuses ``_valueX`` in an
extension), so these run against HAPI R4.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, GoalAchievement, Party
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import open_store, save_case
from fhir_cm.sync import pull, push_pending
from tests.mapping.builders import full_case, translated_note
from tests.servers import RunningServer
from tests.sync.seeding import seed_case
from tests.sync.test_pull_server import stored

pytestmark = pytest.mark.server

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def a_case_on(base: str, tmp_path: Path) -> tuple[Case, Settings]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        fhir_base=base,
        identifier_system=f"urn:fhir-cm:test:{uuid.uuid4().hex}",
        fhir_version="auto",
    )
    case = full_case(
        id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"pat-{uuid.uuid4().hex[:12]}")
    )
    return case, settings


async def pull_then_push_goal_1_achieved(raw: AsyncFhirClient, case: Case, settings: Settings) -> None:
    """Pull the case, mark goal-1 achieved locally, push: the way a case manager's edit goes out."""
    with open_store(settings.database_url) as store:
        assert (await pull(store, raw, settings)).quarantined == 0
        held = stored(store, case.id)
        goals = [
            g.model_copy(update={"achievement": GoalAchievement.ACHIEVED}) if g.id == "goal-1" else g
            for g in held.goals
        ]
        with store.session() as s:
            save_case(s, held.model_copy(update={"goals": goals}))
        async with AsyncFhirClient(settings.fhir_base) as client:
            pushed = await push_pending(store, client, settings)
    assert (pushed.failed, pushed.conflicts, pushed.updated) == (0, 0, 1)


async def test_a_goal_target_of_1_50_is_pulled_and_pushed_back_as_1_50(tmp_path: Path, hapi_r4: RunningServer) -> None:
    base = hapi_r4.base_url
    case, settings = a_case_on(base, tmp_path)
    async with AsyncFhirClient(base, enforce_capabilities=False) as raw:
        seeded = await seed_case(raw, case, settings.identifier_system)
        goal = seeded["Goal/goal-1"]
        goal["target"][0]["detailQuantity"] = {"value": "@", "unit": "mmol/L"}
        body = json.dumps(goal).replace('"@"', "1.50")  # the hospital's value, to the hundredth
        url = f"{base}/Goal/{goal['id']}"
        async with httpx.AsyncClient() as http:
            assert (await http.put(url, content=body, headers=FHIR_JSON)).status_code == 200
            assert '"value":1.50' in (await http.get(url, headers=FHIR_JSON)).text.replace(" ", "")

        await pull_then_push_goal_1_achieved(raw, case, settings)

        async with httpx.AsyncClient() as http:
            after = (await http.get(url, headers=FHIR_JSON)).text.replace(" ", "")
        assert '"code":"achieved"' in after  # our change went
        assert '"value":1.50' in after  # and the hospital's value stayed as written


async def test_an_extension_value_with_its_own_extensions_is_pulled_and_pushed_back(
    tmp_path: Path, hapi_r4: RunningServer
) -> None:
    """``_valueString`` beside an extension's ``valueString`` (its translation) is valid FHIR the
    validating models refuse: the Goal is the case's, and goes back with it."""
    case, settings = a_case_on(hapi_r4.base_url, tmp_path)
    note = translated_note()
    async with AsyncFhirClient(hapi_r4.base_url, enforce_capabilities=False) as raw:
        seeded = await seed_case(raw, case, settings.identifier_system)
        goal = {**seeded["Goal/goal-1"], "extension": [note]}
        await raw.update(goal)

        await pull_then_push_goal_1_achieved(raw, case, settings)

        after = await raw.read("Goal", goal["id"])
    assert after["achievementStatus"]["coding"][0]["code"] == "achieved"
    assert after["extension"] == [note]
