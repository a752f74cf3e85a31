"""The pull's quarantine against the real R4 server (sekmet-fhir over real HTTP): one entry per bad
resource, however often pulls read it again; a new version still bad replaces it; a copy taken in
clears it."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case, list_quarantine
from fhir_cm.sync import pull
from tests.mapping.builders import full_case
from tests.sync.seeding import seed_case

pytestmark = pytest.mark.server


def a_case() -> Case:
    return full_case(
        id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"pat-{uuid.uuid4().hex[:12]}")
    )


def spoilt(goal: dict[str, Any]) -> dict[str, Any]:
    """The goal with a lifecycle status the case-management model has no place for (valid FHIR)."""
    return {**goal, "lifecycleStatus": "entered-in-error"}


async def test_repeat_pulls_keep_one_entry_per_bad_resource_until_it_is_taken_in(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    good = seeded["Goal/goal-1"]
    bad = await raw.update(spoilt(good))

    first = await pull(store, raw, settings)
    assert (first.quarantined, first.still_quarantined) == (1, 0)
    assert first.quarantine_text() == "1 quarantined"
    with store.session(read_only=True) as s:
        (entry,) = list_quarantine(s, source=raw.base_url)
    assert (entry.resource_type, entry.server_id) == ("Goal", good["id"])

    # The overlap of every later pull reads it again, and so does a re-pull from the start.
    again = await pull(store, raw, settings)
    since = await pull(store, raw, settings, since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    # Reported as still set aside, not as set aside anew: 'quarantined 1' at every pull would over-report.
    assert (again.quarantined, again.still_quarantined) == (since.quarantined, since.still_quarantined) == (0, 1)
    assert again.quarantine_text() == "0 quarantined (1 already in quarantine)"
    with store.session(read_only=True) as s:
        (seen,) = list_quarantine(s, source=raw.base_url)
    assert (seen.id, seen.received_at, seen.version) == (entry.id, entry.received_at, bad.version_id)
    assert seen.last_seen_at > entry.last_seen_at

    # A new version, still bad: it replaces the entry (the older one is no longer on the server).
    worse = await raw.update({**spoilt(good), "description": {"text": "changed, still unreadable"}}, versioned=False)
    newer = await pull(store, raw, settings)
    assert (newer.quarantined, newer.still_quarantined) == (1, 0)  # a new version set aside is news
    with store.session(read_only=True) as s:
        (replaced,) = list_quarantine(s, source=raw.base_url)
    assert replaced.version == worse.version_id != bad.version_id
    assert "changed, still unreadable" in replaced.raw and replaced.received_at > entry.received_at

    # Put right on the server: taken in, and the entry goes.
    fixed = await raw.update({k: v for k, v in good.items() if k != "meta"}, versioned=False)
    report = await pull(store, raw, settings)
    assert (report.quarantined, report.still_quarantined) == (0, 0)
    with store.session(read_only=True) as s:
        assert list_quarantine(s, source=raw.base_url) == []
        stored = get_case(s, case.id)
    assert stored is not None and sorted(g.id for g in stored.goals) == sorted(g.id for g in case.goals)
    assert fixed.version_id is not None


async def test_a_resource_set_aside_is_warned_of_once_not_at_every_pull(
    store: Store, raw: AsyncFhirClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    await raw.update(spoilt(seeded["Goal/goal-1"]))

    def warnings() -> list[str]:
        found = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "quarantined" in r.message]
        caplog.clear()
        return found

    with caplog.at_level(logging.DEBUG, logger="fhir_cm.sync"):
        await pull(store, raw, settings)
        assert len(warnings()) == 1
        for _ in range(2):  # the worker's next rounds read it again in the overlap
            assert (await pull(store, raw, settings)).still_quarantined == 1
            assert warnings() == []
        await raw.update({**spoilt(seeded["Goal/goal-1"]), "description": {"text": "new"}}, versioned=False)
        await pull(store, raw, settings)
        assert len(warnings()) == 1  # a new version is news


async def test_the_warning_names_the_resource_type_with_its_article(
    store: Store, raw: AsyncFhirClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """'quarantined an EpisodeOfCare', 'an Encounter', 'a Goal': the line reads as English."""
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    (episode,) = [r for r in seeded.values() if r["resourceType"] == "EpisodeOfCare"]
    await raw.update({**episode, "status": "entered-in-error"})  # valid FHIR; the case is set aside with it

    with caplog.at_level(logging.WARNING, logger="fhir_cm.sync"):
        await pull(store, raw, settings)

    said = {r.getMessage().split(" from ")[0] for r in caplog.records if "quarantined" in r.getMessage()}
    assert {"quarantined an EpisodeOfCare", "quarantined an Encounter", "quarantined a Goal"} <= said, said
