"""What a push costs in requests: Bundles POSTed to the base, not one request per resource.

HAPI 8's CapabilityStatement lists ``transaction`` among its system interactions but not ``batch``,
though its base serves both. The client took the statement at its word and sent every preparation
batch (the patient's read, the parties' reads and creates, the copies looked up) one request per
entry: against HAPI a case cost about fourteen requests where sekmet's cost four, each a round trip
a hospital's network makes slow. A batch is now sent wherever transactions are, and a server that
refuses it is asked singly from then on (``tests/fhir/test_fhir_bundles.py``).
"""

from __future__ import annotations

from collections import Counter

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store
from fhir_cm.sync import push_cases
from fhir_cm.synthetic import generate_cases
from tests.sync.faulty_proxy import faulty_proxy
from tests.sync.server_state import expected, server_state
from tests.sync.test_push_leases import save, split

pytestmark = pytest.mark.server


async def test_a_push_sends_bundles_and_a_few_fixed_requests_only(
    store: Store, settings: Settings, raw: AsyncFhirClient, fhir_server: str, system: str
) -> None:
    cases = list(generate_cases(3, seed=5150))
    save(store, cases)
    origin, path = split(fhir_server)

    async with faulty_proxy(origin, rate=0.0) as (root, proxy), AsyncFhirClient(root + path) as client:
        report = await push_cases(store, client, settings, cases)

    assert report.ok and report.cases == len(cases)
    # The statement and the adapter's Device once each; everything else goes in Bundles to the base.
    singles = Counter(s.split("?")[0] for s in proxy.seen if s not in (f"GET {path}/metadata", f"POST {path}"))
    assert singles == {f"POST {path}/Device": 1}, singles
    state = await server_state(raw, system)
    assert state.counts == expected(cases, system)
