"""CDS Hooks for a patient whose case was pushed to the EHR's server: the EHR calls with the id its
server gave the Patient (sekmet chooses its own; HAPI keeps ours), and the card still finds the case."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import get_ledger, open_store
from fhir_cm.sync import push_pending

from .conftest import BASE, ISSUER, TODAY, Signer
from .test_cds_hooks import PV, call, eligible_prefetch, open_case

pytestmark = pytest.mark.server


async def test_the_ehrs_id_of_a_pushed_patient_finds_their_open_case(
    tmp_path: Path, fhir_server: str, signer: Signer, signer_and_jwks: tuple[Signer, str]
) -> None:
    # Found by our own patient id alone, a pushed patient the server knows by an id of its own was
    # shown to the clinician as eligible for case management, with a suggestion to refer them again.
    tag = uuid.uuid4().hex[:12]
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'cds.db'}",
        fhir_base=fhir_server,
        identifier_system=f"urn:t:{tag}",
        cds_issuers=json.dumps({ISSUER: signer_and_jwks[1]}),
    )
    with open_store(settings.database_url) as store:
        case = open_case(store, f"pat-{tag}")
        async with AsyncFhirClient(fhir_server) as client:
            assert (await push_pending(store, client, settings)).ok
        with store.session(read_only=True) as s:
            patient = get_ledger(s, fhir_server, "Patient", case.patient.id)
        assert patient is not None and patient.server_id
        theirs = patient.server_id

        with TestClient(create_app(settings, store=store, clock=lambda: TODAY), base_url=BASE) as cds:
            r = cds.post(PV, json=call(theirs, **eligible_prefetch(theirs)), headers=signer.headers(PV))

    assert r.status_code == 200, r.text
    summaries = [card["summary"] for card in r.json()["cards"]]
    assert summaries[0].startswith("Open case with Dana Reed"), summaries
    assert not any("eligible" in s.lower() for s in summaries)
