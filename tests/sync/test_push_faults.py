"""Push through a network that refuses (429/503), drops connections and loses answers, at 20%."""

from __future__ import annotations

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
