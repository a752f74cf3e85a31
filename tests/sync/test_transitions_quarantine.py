"""The transitions tracker's quarantine against a real R4 server that validates nothing (sekmet with
inbound validation off, as lenient servers are): an Encounter of the patient the strict model refuses
is set aside once, however often the tracker reads it, and its entry goes once the server's copy reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, list_quarantine
from fhir_cm.sync import track_transitions
from tests.servers import sekmet_server
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """In place of the session's server, for this module: one that takes what it is sent."""
    from sekmet.config import ValidationSettings

    workdir = tmp_path_factory.mktemp("lenient-server")
    with sekmet_server(workdir, validation=ValidationSettings(inbound="off")) as server:
        yield server.base_url


async def test_a_refused_encounter_has_one_entry_gone_once_it_reads(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    await put_organisations(raw, f"hosp-{tag}")
    await enrol(store, raw, settings, tag)
    good = encounter(f"pat-{tag}", "IMP", "2024-03-01", "2024-03-05", f"hosp-{tag}", disposition="home")
    created = await raw.create({**good, "period": {"start": "2024-03-01", "end": "2024-03-05", "madeUp": 1}})

    for run in range(3):  # set aside by the first run; the later ones read it again and keep it there
        report = await track_transitions(store, raw, settings)
        assert (report.quarantined, report.still_quarantined) == ((1, 0) if run == 0 else (0, 1))
    with store.session(read_only=True) as s:
        (entry,) = list_quarantine(s, source=raw.base_url)
    assert (entry.resource_type, entry.server_id) == ("Encounter", created.id)

    await raw.update({**good, "id": created.id}, versioned=False)  # the hospital puts it right
    report = await track_transitions(store, raw, settings)
    assert (report.quarantined, report.still_quarantined, report.stays_added) == (0, 0, 1)
    with store.session(read_only=True) as s:
        assert list_quarantine(s, source=raw.base_url) == []
