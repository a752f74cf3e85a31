"""The adapter's Device, which every Provenance names, when a server already holds two of them (two
workers raced on a server that does not serialise conditional creates)."""

from __future__ import annotations

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store
from fhir_cm.sync import push_cases
from fhir_cm.sync._provenance import device_resource
from fhir_cm.synthetic import generate_cases
from tests.sync.server_state import provenances_for, server_state

pytestmark = pytest.mark.server


async def test_two_devices_of_ours_do_not_stop_the_push_and_every_worker_names_the_same_one(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, system: str
) -> None:
    twins = [(await raw.create(device_resource(system, "R4"))).id for _ in range(2)]
    first = min(twins, key=lambda i: (len(i), i))
    [case] = generate_cases(1, seed=611)

    report = await push_cases(store, client, settings, [case])

    assert report.ok, report.failures
    state = await server_state(raw, system)
    written = {f"{t}/{r[0]['id']}" for (t, _), r in state.resources.items() if t != "Patient"}
    [provenance] = await provenances_for(raw, written)
    assert [a["who"]["reference"] for a in provenance["agent"]] == [f"Device/{first}"]
