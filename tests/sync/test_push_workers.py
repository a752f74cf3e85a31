"""Several workers on one real PostgreSQL store, pushing to the real server: each case exactly once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import OutboxStatus, claim_outbox, list_outbox, open_store, save_case
from fhir_cm.sync import PushReport, run_worker
from fhir_cm.synthetic import generate_cases
from tests.pg import temporary_database
from tests.sync.server_state import expected, server_state

pytestmark = [pytest.mark.server, pytest.mark.postgres]

WORKERS = 3
N = 9


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temporary_database("fhir_cm_push") as url:
        yield url


def work(settings: Settings, name: str, reports: dict[str, PushReport]) -> None:
    async def one() -> PushReport:
        with open_store(settings.database_url) as store:
            async with AsyncFhirClient(settings.fhir_base or "") as client:
                return await run_worker(store, client, settings, once=True, worker_id=name)

    reports[name] = asyncio.run(one())


async def test_workers_sharing_a_postgresql_outbox_push_every_case_once_and_take_over_a_dead_ones_rows(
    pg_url: str, fhir_server: str, system: str
) -> None:
    settings = Settings(
        database_url=pg_url, fhir_base=fhir_server, identifier_system=system, push_batch_size=2, push_concurrency=2
    )
    cases = list(generate_cases(N, seed=77))
    with open_store(pg_url) as store:
        with store.session() as s:
            for case in cases:
                save_case(s, case)
        with store.session() as s:  # a worker that claimed two rows and died (its lease is already over)
            dead = claim_outbox(s, "dead-worker", limit=2, lease_seconds=0)
    assert len(dead) == 2

    reports: dict[str, PushReport] = {}
    threads = [threading.Thread(target=work, args=(settings, f"w{i}", reports)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert sorted(reports) == [f"w{i}" for i in range(WORKERS)]
    assert sum(r.cases for r in reports.values()) == N
    assert sum(r.failed for r in reports.values()) == 0
    with open_store(pg_url) as store, store.session(read_only=True) as s:
        rows = list_outbox(s)
    assert len(rows) == N and {r.status for r in rows} == {OutboxStatus.DONE}
    assert {r.case_id for r in rows} == {c.id for c in cases}
    assert {r.case_id: r.attempts for r in rows if r.case_id not in {d.case_id for d in dead}} == {
        c.id: 1 for c in cases if c.id not in {d.case_id for d in dead}
    }
    assert {r.claimed_by for r in rows} <= {f"w{i}" for i in range(WORKERS)}
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
        state = await server_state(raw, system)
    assert state.counts == expected(cases, system)
