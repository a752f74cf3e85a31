"""``server_state``, the push tests' view of a shared server, sees every resource of the test's own
identifier system and nothing else, duplicates included, on every server the push tests run against.

It asks the server for ``identifier=<system>|`` rather than reading every resource the session wrote:
a server dropping some of ours from that search would let a test of "nothing on the server" or "no
duplicate" pass without looking. sekmet ignores the parameter on Goal and CareTeam (its canary), which
the filter on our side covers.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import open_store
from fhir_cm.sync import push_cases
from fhir_cm.synthetic import generate_cases
from tests.servers import RunningServer
from tests.sync.server_state import expected, server_state

pytestmark = pytest.mark.server


async def _finds_ours_only(base: str, tmp_path: Path) -> None:
    ours, theirs = (f"urn:fhir-cm:test:{uuid.uuid4().hex}" for _ in range(2))
    cases = list(generate_cases(3, seed=17))
    async with AsyncFhirClient(base) as client, AsyncFhirClient(base, enforce_capabilities=False) as raw:
        for system in (theirs, ours):  # the same cases under another system: on the server, not ours
            settings = Settings(
                database_url=f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}",
                fhir_base=base,
                identifier_system=system,
                fhir_version="auto",
            )
            with open_store(settings.database_url) as store:
                assert (await push_cases(store, client, settings, cases)).ok
        # A second copy of one resource of every type: a duplicate must show.
        copied: Counter[tuple[str, str]] = Counter()
        for (rtype, value), copies in (await server_state(raw, ours)).resources.items():
            if rtype not in {t for t, _ in copied}:
                await raw.create({k: v for k, v in copies[0].items() if k not in ("id", "meta")})
                copied[(rtype, value)] += 1

        state = await server_state(raw, ours)

    assert len(copied) == len({t for t, _ in expected(cases, ours)})  # every type has one of ours
    assert state.counts == expected(cases, ours) + copied


async def test_finds_every_resource_of_the_system_and_no_other(fhir_server: str, tmp_path: Path) -> None:
    await _finds_ours_only(fhir_server, tmp_path)


async def test_finds_every_resource_of_the_system_and_no_other_on_the_memory_server(
    memory_fhir: RunningServer, tmp_path: Path
) -> None:
    await _finds_ours_only(memory_fhir.base_url, tmp_path)
