"""A pull from a server that declares the parameters common to all resources once, for all of them.

A CapabilityStatement may list the search parameters it takes on every type (``_id``,
``_lastUpdated``…) in ``rest.searchParam`` rather than under each type; the pull took ``_lastUpdated``
for undeclared there, dropped it, and read every resource of ours again at every pull, filtering by
date here. The real server's own statement is given to the client, with ``_lastUpdated`` moved from
each type to the ``rest`` level: the searches the server sees say whether the pull still asks for
what changed only.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.domain import Party
from fhir_cm.fhir import AsyncFhirClient, Capabilities
from fhir_cm.store import open_store
from fhir_cm.sync import pull
from tests.mapping.builders import full_case
from tests.sync.faulty_proxy import faulty_proxy
from tests.sync.seeding import fresh_settings, seed_case

pytestmark = pytest.mark.server


def declared_once_for_all(statement: dict[str, Any]) -> dict[str, Any]:
    """The statement with ``_lastUpdated`` declared in ``rest.searchParam`` instead of per type."""
    moved = copy.deepcopy(statement)
    rest = moved["rest"][0]
    for entry in rest.get("resource") or []:
        params = entry.get("searchParam") or []
        entry["searchParam"] = [p for p in params if p.get("name") != "_lastUpdated"] or [
            {"name": "identifier", "type": "token"}
        ]
    rest["searchParam"] = [{"name": "_lastUpdated", "type": "date"}]
    return moved


async def test_a_second_pull_asks_for_what_changed_when_lastupdated_is_declared_for_all_types(
    tmp_path: Path, fhir_server: str
) -> None:
    settings = fresh_settings(f"sqlite:///{tmp_path / 'store.db'}", fhir_server)
    case = full_case(
        id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"pat-{uuid.uuid4().hex[:12]}")
    )
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
        await seed_case(raw, case, settings.identifier_system)
        statement = declared_once_for_all(dict((await raw.capabilities()).statement))
    caps = Capabilities.from_statement(statement)
    assert caps.unknown_search_params("EpisodeOfCare", ["_lastUpdated"]) == []

    async with faulty_proxy(fhir_server.removesuffix("/fhir"), rate=0.0) as (root, proxy):
        async with AsyncFhirClient(f"{root}/fhir", enforce_capabilities=False, capabilities=caps) as client:
            with open_store(settings.database_url) as store:
                first = await pull(store, client, settings)
                seen = len(proxy.seen)
                again = await pull(store, client, settings)

    assert first.new_cases == 1 and again.new_cases == again.updated_cases == 0
    searches = [line for line in proxy.seen[seen:] if line.startswith("GET /fhir/") and "identifier=" in line]
    assert searches, "the second pull searched nothing"
    assert all("_lastUpdated=gt" in line for line in searches), searches
