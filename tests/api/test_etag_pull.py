"""The case's ETag (its revision) across a pull from a real server (sekmet, in-process).

A case manager reads a case, the hospital's server meanwhile gets copies that change nothing the API
shows (a resource saved again — a new versionId — or given an element fhir-cm does not model), a pull
takes them in: a change sent with the ETag read before must still go through (no 412). A pull that
changes something the case's read shows — even only how a date is written (``dates_as_written``) —
must move the ETag, so a change based on the old read is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_resources
from fhir_cm.sync import pull
from tests.mapping.builders import full_case
from tests.sync.seeding import fresh_settings, seed_case

from .conftest import Keys, bearer

pytestmark = pytest.mark.server

UNMODELLED = {"url": "https://example.org/fhir/StructureDefinition/ward-note", "valueString": "seen on the ward"}


def a_case() -> Case:
    """The full example case for a patient of its own, its first goal due on a month's last day."""
    case = full_case(
        id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"pat-{uuid.uuid4().hex[:12]}")
    )
    goals = [g.model_copy(update={"due": dt.date(2024, 6, 30)}) if g.id == "goal-1" else g for g in case.goals]
    return case.model_copy(update={"goals": goals})


def seeded_and_pulled(store: Store, settings: Settings, fhir_server: str) -> tuple[Case, dict[str, Any]]:
    async def run() -> tuple[Case, dict[str, Any]]:
        case = a_case()
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
            seeded = await seed_case(raw, case, settings.identifier_system)
            await pull(store, raw, settings)
        return case, seeded

    return asyncio.run(run())


def edited_on_server_then_pulled(
    store: Store, settings: Settings, fhir_server: str, names: list[str], seeded: dict[str, Any], edit: Any
) -> None:
    """Each named resource read from the server, edited by ``edit``, saved again; then a pull."""

    async def run() -> None:
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
            for name in names:
                resource = await raw.read(name.split("/")[0], seeded[name]["id"])
                edit(resource)
                await raw.update(resource)
            await pull(store, raw, settings)

    asyncio.run(run())


def read(client: TestClient, keys: Keys, case_id: str) -> tuple[str, dict[str, Any]]:
    response = client.get(f"/api/v1/cases/{case_id}", headers=bearer(keys.supervisor))
    assert response.status_code == 200, response.text
    return response.headers["ETag"], response.json()


def shown(body: dict[str, Any]) -> dict[str, Any]:
    """A case's read but its bookkeeping (the revision itself, the time of the last save)."""
    return {k: v for k, v in body.items() if k not in ("revision", "updated_at")}


def facade_tag(client: TestClient, keys: Keys, goal_id: str) -> str:
    response = client.get(f"/fhir/Goal/{goal_id}", headers=bearer(keys.service))
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'W/"{response.json()["meta"]["versionId"]}"'
    return response.headers["ETag"]


def with_unmodelled(resource: dict[str, Any]) -> None:
    resource.setdefault("extension", []).append(UNMODELLED)


def test_a_pull_of_copies_that_change_nothing_the_api_shows_leaves_the_etag_good(
    app: FastAPI, keys: Keys, api_store: Store, fhir_server: str
) -> None:
    settings = fresh_settings("sqlite://", fhir_server)
    app.state.settings = settings
    case, seeded = seeded_and_pulled(api_store, settings, fhir_server)
    names = sorted(seeded)
    plain, extended = names[::2], names[1::2]
    assert ("Goal/goal-2", "Goal/goal-1") == (plain[4], extended[3])
    with TestClient(app) as client:
        tag, before = read(client, keys, case.id)
        served = {goal: facade_tag(client, keys, goal) for goal in ("goal-1", "goal-2")}
        # Half the resources saved again as they are (a new versionId), half given an unmodelled element.
        edited_on_server_then_pulled(api_store, settings, fhir_server, plain, seeded, lambda r: None)
        edited_on_server_then_pulled(api_store, settings, fhir_server, extended, seeded, with_unmodelled)
        with api_store.session(read_only=True) as s:  # the pull took the new copies in
            held = {f"{r.resource_type}/{r.key}": r.raw for r in get_resources(s, case.id)}
        assert all(UNMODELLED in held[name].get("extension", []) for name in extended)
        # The façade's ETag is each resource's content: the same for a copy saved again as it was, new for
        # one the hospital gave an element, which the façade serves as it was stored.
        assert facade_tag(client, keys, "goal-2") == served["goal-2"]
        assert facade_tag(client, keys, "goal-1") != served["goal-1"]

        again_tag, again = read(client, keys, case.id)
        assert shown(again) == shown(before)
        assert again_tag == tag
        changed = client.patch(
            f"/api/v1/cases/{case.id}", json={"acuity": "high"}, headers={**bearer(keys.supervisor), "If-Match": tag}
        )
        assert changed.status_code == 200, changed.text

        # With the local change waiting to be pushed, another such pull leaves the new ETag good too.
        tag = changed.headers["ETag"]
        edited_on_server_then_pulled(api_store, settings, fhir_server, names, seeded, lambda r: None)
        assert read(client, keys, case.id)[0] == tag
        changed = client.patch(
            f"/api/v1/cases/{case.id}",
            json={"acuity": "intensive"},
            headers={**bearer(keys.supervisor), "If-Match": tag},
        )
        assert changed.status_code == 200, changed.text


def test_a_pull_that_changes_only_how_a_date_is_written_moves_the_etag(
    app: FastAPI, keys: Keys, api_store: Store, fhir_server: str
) -> None:
    """The hospital now writes the goal due "2024-06" (read as 2024-06-30, the day it was): the case holds
    the same day, but its read says the date as written, so the body changed and the ETag must too."""
    settings = fresh_settings("sqlite://", fhir_server)
    app.state.settings = settings
    case, seeded = seeded_and_pulled(api_store, settings, fhir_server)

    def due_as_a_month(goal: dict[str, Any]) -> None:
        assert goal["target"][0]["dueDate"] == "2024-06-30"
        goal["target"][0]["dueDate"] = "2024-06"

    with TestClient(app) as client:
        tag, before = read(client, keys, case.id)
        assert "/goals/0/due" not in before["dates_as_written"]
        edited_on_server_then_pulled(api_store, settings, fhir_server, ["Goal/goal-1"], seeded, due_as_a_month)
        again_tag, again = read(client, keys, case.id)
        assert again["case"] == before["case"]  # the same day
        assert again["dates_as_written"]["/goals/0/due"] == "2024-06"
        assert again_tag != tag
        stale = client.patch(
            f"/api/v1/cases/{case.id}", json={"acuity": "high"}, headers={**bearer(keys.supervisor), "If-Match": tag}
        )
        assert stale.status_code == 412, stale.text
        assert stale.headers["ETag"] == again_tag


def test_the_etag_moves_exactly_when_the_read_does_after_a_day_set_back_to_the_one_written(
    app: FastAPI, keys: Keys, api_store: Store, fhir_server: str
) -> None:
    """A goal due the hospital writes "2024-06" is moved here to the 15th and back to the 30th; then a pull
    brings only an unmodelled element on another resource. Whatever the read shows of the as-written
    date, the ETag must move if and only if the read changed (it moved while the read stayed the same:
    a change based on it got a 412 for nothing anyone could see)."""
    settings = fresh_settings("sqlite://", fhir_server)
    app.state.settings = settings
    case, seeded = seeded_and_pulled(api_store, settings, fhir_server)

    def due_as_a_month(goal: dict[str, Any]) -> None:
        goal["target"][0]["dueDate"] = "2024-06"

    edited_on_server_then_pulled(api_store, settings, fhir_server, ["Goal/goal-1"], seeded, due_as_a_month)
    with TestClient(app) as client:
        tag, _ = read(client, keys, case.id)
        for due in ("2024-06-15", "2024-06-30"):
            moved = client.patch(
                f"/api/v1/cases/{case.id}/goals/goal-1",
                json={"due": due},
                headers={**bearer(keys.supervisor), "If-Match": tag},
            )
            assert moved.status_code == 200, moved.text
            tag = moved.headers["ETag"]
        tag, before = read(client, keys, case.id)
        edited_on_server_then_pulled(api_store, settings, fhir_server, ["Condition/need-1"], seeded, with_unmodelled)
        again_tag, again = read(client, keys, case.id)
        assert again["case"] == before["case"]
        assert again["dates_as_written"] == {"/goals/0/due": "2024-06"}  # the pull reads the copies again
        assert (again_tag == tag) == (shown(again) == shown(before))
        answer = client.patch(
            f"/api/v1/cases/{case.id}", json={"acuity": "high"}, headers={**bearer(keys.supervisor), "If-Match": tag}
        )
        assert answer.status_code == (200 if again_tag == tag else 412), answer.text
