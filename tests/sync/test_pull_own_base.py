"""A server reached by another address than the one it names itself by (behind a proxy it writes its
inner address in fullUrls and absolute references; sekmet its configured one, whatever the Host):
a pull takes the bases of its entries' fullUrls for its own.

A sekmet of its own: sekmet ignores ``identifier`` on Goal, so on the session's server the pull's
Goal search would page through every test's goals, and a next link at the address the server names
itself by is not followed (it leaves the configured origin: ``UnsafeLink``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case
from fhir_cm.sync import pull
from tests.servers import sekmet_server
from tests.sync.seeding import seed_case
from tests.sync.test_pull_foreign_refs import a_case, goal

pytestmark = pytest.mark.server


@pytest.fixture
def fhir_server(tmp_path: Path) -> Iterator[str]:
    with sekmet_server(tmp_path / "sekmet") as server:  # HAPI names itself by the address it is reached at
        yield server.base_url


async def test_a_reference_at_the_base_the_server_names_itself_by_is_its_own(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str
) -> None:
    sekmet_base = fhir_server
    case = a_case()
    await seed_case(raw, case, settings.identifier_system)
    await raw.create(goal(settings, "goal-inner", f"{sekmet_base}/Patient/{case.patient.id}"))

    async with AsyncFhirClient(sekmet_base.replace("127.0.0.1", "localhost"), enforce_capabilities=False) as reached:
        report = await pull(store, reached, settings)

    with store.session(read_only=True) as s:
        merged = get_case(s, case.id)
    assert report.quarantined == 0
    assert merged is not None and "goal-inner" in {g.id for g in merged.goals}
