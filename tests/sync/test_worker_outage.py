"""The worker through an outage of its FHIR server: rounds fail, then the first round after it is
back pushes what waited — without a restart, and without waiting for leases of its own failed rounds."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import NO_RETRY, AsyncFhirClient
from fhir_cm.jobs import run_sync_worker
from fhir_cm.store import OutboxStatus, Store, list_outbox, open_store, save_case
from fhir_cm.sync import PushReport, run_worker
from fhir_cm.synthetic import generate_cases
from tests.sync.faulty_proxy import faulty_proxy

pytestmark = pytest.mark.server

DOWN_ROUNDS = 3


async def test_a_case_waiting_through_an_outage_is_pushed_in_the_first_round_after_it(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    # The gateway answers 503 to everything while the server is down. Each failed round had claimed
    # the case and left it in flight under its 60 s lease, so the rounds after the server came
    # back found nothing due, for up to a minute (and `push --all` waited for this live "holder").
    (case,) = generate_cases(1, seed=9)
    with store.session() as s:
        save_case(s, case)
    rounds: list[PushReport] = []
    down: list[tuple[OutboxStatus, int]] = []  # the outbox at the end of the outage
    async with faulty_proxy(fhir_server.removesuffix("/fhir"), rate=1.0, faults=("503",)) as (root, proxy):
        paused = 0

        async def pause(stop: asyncio.Event, seconds: float) -> None:
            nonlocal paused
            paused += 1
            if paused == DOWN_ROUNDS:
                with store.session(read_only=True) as s:
                    down.extend((r.status, r.attempts) for r in list_outbox(s))
                proxy.enabled = False  # the server is back
            elif paused > DOWN_ROUNDS:
                stop.set()

        behind = settings.model_copy(update={"fhir_base": f"{root}/fhir"})
        await run_sync_worker(store, behind, interval=5.0, pause=pause, on_round=rounds.append)

    assert proxy.faults["503"] > 0
    assert down == [(OutboxStatus.PENDING, 0)]  # due, and not counted as tried
    assert [r.cases for r in rounds] == [1]  # the rounds in the outage failed before any report
    with store.session(read_only=True) as s:
        (row,) = [r for r in list_outbox(s) if r.case_id == case.id]
    assert row.status is OutboxStatus.DONE


async def test_a_round_failing_on_the_network_logs_what_happened_and_where(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An engineer reading the worker's log saw 'sync round failed (TransientError)' at every round:
    neither what happened nor with which server."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    base = f"http://127.0.0.1:{port}/fhir"
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'worker.db'}", fhir_base=base, identifier_system="urn:x")

    async def pause(stop: asyncio.Event, seconds: float) -> None:
        stop.set()  # one round is enough

    with open_store(settings.database_url) as store:
        async with AsyncFhirClient(base, retry=NO_RETRY) as client:
            await run_worker(store, client, settings, pause=pause)

    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sync round failed")]
    assert said == [
        f"sync round failed (connection refused by 127.0.0.1:{port} (nothing listening there?)); trying again in 5s"
    ]
