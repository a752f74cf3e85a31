"""Push and pull against HAPI FHIR JPA R4 storing in PostgreSQL, as hospitals run it in production.

The rest of the suite runs HAPI on an in-memory H2 database (quick to start, nothing to set up); the
push benchmark (``benchmarks/bench_push.py --hapi-db postgres``) measures HAPI on PostgreSQL, whose
database work differs (H2 scans a table where PostgreSQL uses an index). This checks that the
launcher's PostgreSQL mode is what it says: HAPI's tables are in the database given, and the
adapter's round trip through it keeps every case as it was.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import get_case, open_store
from fhir_cm.sync import pull, push_cases
from fhir_cm.synthetic import generate_cases
from tests.hapi_server import hapi_server
from tests.pg import temporary_database
from tests.servers import RunningServer
from tests.sync.seeding import seed_parties
from tests.sync.server_state import expected, server_state

pytestmark = pytest.mark.server

N = 3


@pytest.fixture(scope="module")
def hapi_on_postgres() -> Iterator[tuple[RunningServer, str]]:
    """HAPI R4 on a fresh PostgreSQL database of its own: ``(server, database URL)``."""
    with temporary_database("fhir_cm_test_hapi") as url, hapi_server("R4", database=url) as server:
        yield server, url


def rows(database_url: str, resource_type: str) -> int:
    """How many resources of ``resource_type`` HAPI holds in its PostgreSQL tables."""
    url = make_url(database_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database) as conn:
        found = conn.execute("SELECT count(*) FROM hfj_resource WHERE res_type = %s", (resource_type,)).fetchone()
    return int(found[0]) if found else 0


async def test_push_and_pull_through_hapi_on_postgres(
    tmp_path: Path, hapi_on_postgres: tuple[RunningServer, str]
) -> None:
    server, database = hapi_on_postgres
    base = server.base_url
    system = f"urn:fhir-cm:test:{uuid.uuid4().hex}"
    cases: list[Case] = list(generate_cases(N, seed=61))
    async with AsyncFhirClient(base, enforce_capabilities=False) as raw:
        for case in cases:  # the EHR's patients, practitioners and organisations, under their own ids
            await seed_parties(raw, case)

        pushing = Settings(database_url=f"sqlite:///{tmp_path / 'push.db'}", fhir_base=base, identifier_system=system)
        with open_store(pushing.database_url) as store:
            async with AsyncFhirClient(base) as client:
                report = await push_cases(store, client, pushing, cases)
                assert report.ok, report.failures
        state = await server_state(raw, system)
        assert state.counts == +Counter({k: n for k, n in expected(cases, system).items() if k[0] != "Patient"})
        # Stored where the launcher was told to: HAPI's own tables in this database hold them.
        assert rows(database, "EpisodeOfCare") == N

        pulling = Settings(database_url=f"sqlite:///{tmp_path / 'pull.db'}", fhir_base=base, identifier_system=system)
        with open_store(pulling.database_url) as store:
            pulled = await pull(store, raw, pulling)
            assert (pulled.new_cases, pulled.quarantined, pulled.conflicts) == (N, 0, 0)
            with store.session(read_only=True) as s:
                for case in cases:
                    assert get_case(s, case.id) == case
