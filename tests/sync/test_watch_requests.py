"""What the Encounter watch and the tracker ask the server, counted at a recording proxy.

As an integration engineer sees it in the server's access log: the first pull round reads every open
case's whole Encounter history (the seeding); the second must ask only for what changed since — not
read every history again because the seeding left no watermark. And a tracker run over many cases
reads their patients' records in a few searches, not one request per case, still following a record
the hospital merged into another.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_ledger
from fhir_cm.sync import track_transitions
from fhir_cm.sync._watch import BATCH
from tests.sync.faulty_proxy import FaultyProxy, faulty_proxy
from tests.sync.test_transitions_server import enrol

pytestmark = pytest.mark.server


@asynccontextmanager
async def _recorded(
    fhir_server: str, settings: Settings
) -> AsyncIterator[tuple[AsyncFhirClient, Settings, FaultyProxy]]:
    """A client and settings that reach the server through a proxy listing every request (no faults)."""
    async with faulty_proxy(fhir_server.removesuffix("/fhir"), rate=0.0) as (root, proxy):
        async with AsyncFhirClient(f"{root}/fhir", enforce_capabilities=False) as client:
            yield client, settings.model_copy(update={"fhir_base": f"{root}/fhir"}), proxy


def _requests(proxy: FaultyProxy, prefix: str) -> list[str]:
    return [line for line in proxy.seen if line.startswith(prefix)]


async def test_a_tracker_run_reads_its_patients_in_batches_and_follows_only_the_merged_one(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    async with _recorded(fhir_server, settings) as (client, proxied, proxy):
        tags = [uuid.uuid4().hex[:10] for _ in range(5)]
        cases = [await enrol(store, client, proxied, tag) for tag in tags]
        merged = cases[2].patient.id
        survivor = f"{merged}-2"
        await client.update({"resourceType": "Patient", "id": survivor, "active": True}, versioned=False)
        link = [{"other": {"reference": f"Patient/{survivor}"}, "type": "replaced-by"}]
        await client.update({"resourceType": "Patient", "id": merged, "active": False, "link": link}, versioned=False)

        proxy.seen.clear()
        report = await track_transitions(store, client, proxied, case_ids=[c.id for c in cases])

    assert report.failed == {} and report.cases == len(cases)
    assert report.patients_merged == [cases[2].id]
    patient_requests = _requests(proxy, "GET /fhir/Patient")
    # One search per chunk of patients, and one read: the survivor the merged record's link leads to.
    assert len(patient_requests) <= math.ceil(len(cases) / BATCH) + 1, patient_requests
    assert [line for line in patient_requests if "?" not in line] == [f"GET /fhir/Patient/{survivor}"]
    assert _requests(proxy, "POST /fhir") == []
    with store.session(read_only=True) as s:
        entry = get_ledger(s, client.base_url, "Patient", merged)
    assert entry is not None and entry.server_id == survivor
