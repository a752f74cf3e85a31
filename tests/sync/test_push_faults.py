"""Push through a network that refuses (429/503), drops connections and loses answers, at 20%."""

from __future__ import annotations

import datetime as dt

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient, RetryPolicy
from fhir_cm.store import OutboxStatus, Store, list_outbox, save_case
from fhir_cm.sync import push_pending
from fhir_cm.synthetic import generate_cases
from tests.sync.faulty_proxy import faulty_proxy
from tests.sync.server_state import expected, server_state

pytestmark = pytest.mark.server

MAX_RUNS = 30


@pytest.mark.parametrize("seed", [3, 11])
async def test_a_push_through_a_faulty_network_converges_to_the_exact_end_state(
    store: Store, settings: Settings, raw: AsyncFhirClient, fhir_server: str, system: str, seed: int
) -> None:
    settings = settings.model_copy(update={"push_batch_size": 2})  # more batches: more requests to fault
    cases = list(generate_cases(10, seed=100 + seed))
    with store.session() as s:
        for case in cases:
            save_case(s, case)
    root = fhir_server.removesuffix("/fhir")
    quick = RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_max=0.0, max_wait=1.0)
    runs = []
    async with faulty_proxy(root, rate=0.2, seed=seed) as (proxy_root, proxy):
        client = AsyncFhirClient(f"{proxy_root}/fhir", retry=quick)
        async with client:
            for _ in range(MAX_RUNS):
                report = await push_pending(store, client, settings)
                runs.append(report)
                with store.session(read_only=True) as s:
                    open_rows = [r for r in list_outbox(s) if r.status is not OutboxStatus.DONE]
                if report.ok and not open_rows:
                    break

    assert sum(proxy.faults.values()) > 0, "the proxy injected no fault: the test proved nothing"
    assert not open_rows, f"still open after {len(runs)} runs: {[r.last_error for r in open_rows]}"
    assert all(not f.permanent for r in runs for f in r.failures)
    state = await server_state(raw, system)
    assert state.counts == expected(cases, system)
    assert state.dangling() == []


async def test_a_server_asking_to_wait_longer_than_the_client_retries_is_not_asked_again_before_then(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    # A gateway answering 429 "Retry-After: 120": the client's retries wait at most a second here,
    # so the case fails for now. Its row was due again at once, so each worker round (every 5 s)
    # sent every pending case again to a server that had asked for two minutes.
    first, second = generate_cases(2, seed=7)
    quick = RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_max=0.0, max_wait=1.0)
    async with faulty_proxy(fhir_server.removesuffix("/fhir"), rate=1.0, faults=("429",), retry_after=120) as (
        proxy_root,
        proxy,
    ):
        async with AsyncFhirClient(f"{proxy_root}/fhir", retry=quick) as client:
            proxy.enabled = False  # the CapabilityStatement and the adapter's Device come through
            with store.session() as s:
                save_case(s, first)
            assert (await push_pending(store, client, settings)).ok
            proxy.enabled = True
            with store.session() as s:
                save_case(s, second)
            before = dt.datetime.now(dt.UTC)
            refused = await push_pending(store, client, settings)
            after = dt.datetime.now(dt.UTC)
            asked = proxy.faults["429"]
            again = await push_pending(store, client, settings)

    with store.session(read_only=True) as s:
        (row,) = [r for r in list_outbox(s) if r.case_id == second.id]
    assert row.status is OutboxStatus.PENDING
    # Due once the two minutes asked for at the 429 (after ``before``) are over, and no later.
    assert before + dt.timedelta(seconds=119) < row.available_at <= after + dt.timedelta(seconds=120)
    assert asked > 0 and proxy.faults["429"] == asked  # the second push sent nothing
    assert again.cases == 0
    (failure,) = refused.failures
    assert (failure.case_id, failure.permanent) == (second.id, False)
    assert failure.retry_after is not None and 119 < failure.retry_after <= 120  # what is left of it
