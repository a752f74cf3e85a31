"""A pull into PostgreSQL of a resource holding a NUL character (``\\u0000``) where the store looks
it up: the identifier a server keeps our key in. FHIR strings may not hold one, yet the real R4
server (sekmet-fhir over real HTTP) stores it; PostgreSQL text cannot, and the lookup stopped the
pull, every round. It is set aside like any resource the model refuses, and the pulls go on."""

from __future__ import annotations

import uuid

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Party
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import list_quarantine, open_store
from fhir_cm.sync import pull
from tests.mapping.builders import full_case
from tests.pg import temporary_database
from tests.sync.seeding import seed_case

pytestmark = [pytest.mark.server, pytest.mark.postgres]


async def test_an_identifier_holding_nul_is_set_aside_and_pulls_go_on(raw: AsyncFhirClient, settings: Settings) -> None:
    case = full_case(id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"p-{uuid.uuid4().hex[:8]}"))
    seeded = await seed_case(raw, case, settings.identifier_system)
    goal = {k: v for k, v in seeded["Goal/goal-1"].items() if k != "meta"}
    with temporary_database() as url, open_store(url) as store:
        pulling = settings.model_copy(update={"database_url": url})
        assert (await pull(store, raw, pulling)).new_cases == 1  # the ledger knows the server from now on

        spoilt = {**goal, "identifier": [{"system": settings.identifier_system, "value": "goal-\x001"}]}
        written = await raw.update(spoilt, versioned=False)
        report = await pull(store, raw, pulling)
        again = await pull(store, raw, pulling)

        with store.session(read_only=True) as s:
            (entry,) = list_quarantine(s, source=raw.base_url)
    assert (report.quarantined, again.quarantined, again.still_quarantined) == (1, 0, 1)  # set aside once, read again
    assert (entry.server_id, entry.version) == (goal["id"], written.version_id)
    assert '"goal-\\u00001"' in entry.raw  # the JSON text as the server sent it
