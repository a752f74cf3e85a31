"""The worker's rounds against a server that asks for time (429 with a ``Retry-After`` of minutes).

The client's retries wait at most a minute; a longer ``Retry-After`` is left to whoever holds the
work: the outbox row (``test_push_faults``) and, here, the worker's next round. The waiting itself
is the worker's ``pause``, which these tests replace to see what it was asked to wait.
"""

from __future__ import annotations

import asyncio

import pytest

from fhir_cm.config import Settings
from fhir_cm.jobs import run_sync_worker
from fhir_cm.store import Store, save_case
from fhir_cm.sync import Pause, PushReport
from fhir_cm.synthetic import generate_cases
from tests.sync.faulty_proxy import FaultyProxy, faulty_proxy

pytestmark = pytest.mark.server


def _recorder(waits: list[tuple[float, int]], proxy: FaultyProxy, rounds: int = 1) -> Pause:
    async def pause(stop: asyncio.Event, seconds: float) -> None:
        waits.append((seconds, len(proxy.seen)))
        if len(waits) == rounds:
            stop.set()

    return pause


async def test_a_pull_asked_to_wait_minutes_holds_the_next_round_back_that_long(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    # Nothing to push; the pull's first search meets "429, Retry-After: 120". The next round came
    # after the interval (5 s) and searched again, every 5 s for the two minutes asked for.
    waits: list[tuple[float, int]] = []
    async with faulty_proxy(
        fhir_server.removesuffix("/fhir"), rate=1.0, faults=("429",), retry_after=120, spared=("/fhir/metadata",)
    ) as (root, proxy):
        behind = settings.model_copy(update={"fhir_base": f"{root}/fhir"})
        await run_sync_worker(store, behind, interval=5.0, pause=_recorder(waits, proxy))

    assert proxy.faults["429"] > 0
    ((wait, _),) = waits
    assert 119 < wait <= 120  # what is left of the two minutes, not the interval


async def test_a_push_asked_to_wait_ends_the_round_before_the_pull(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    # The CapabilityStatement and the adapter's Device come through; the push's case meets "429, Retry-After: 120" and goes back to the outbox due in two minutes;
    # the round went on to pull from the same server at once, and the next came after 5 s.
    (case,) = generate_cases(1, seed=5)
    with store.session() as s:
        save_case(s, case)
    waits: list[tuple[float, int]] = []
    pushed: list[tuple[PushReport, int]] = []
    async with faulty_proxy(
        fhir_server.removesuffix("/fhir"),
        rate=1.0,
        faults=("429",),
        retry_after=120,
        spared=("/fhir/metadata", "/fhir/Device"),
    ) as (root, proxy):
        behind = settings.model_copy(update={"fhir_base": f"{root}/fhir"})
        await run_sync_worker(
            store,
            behind,
            interval=5.0,
            pause=_recorder(waits, proxy),
            on_round=lambda report: pushed.append((report, len(proxy.seen))),
        )

    ((report, after_push),) = pushed
    assert report.failed == 1 and not report.failures[0].permanent
    ((wait, after_round),) = waits
    assert after_round == after_push  # nothing more was asked of the server in that round
    assert 119 < wait <= 120
