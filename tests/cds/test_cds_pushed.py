"""CDS Hooks for a patient whose case was pushed to the EHR's server: the EHR calls with the id its
server gave the Patient (sekmet chooses its own; HAPI keeps ours), and the card still finds the case."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

import pytest
from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_ledger, list_cases, open_store
from fhir_cm.sync import push_pending

from .conftest import BASE, ISSUER, TODAY, Signer
from .test_cds_hooks import PV, call, eligible_prefetch, open_case

pytestmark = pytest.mark.server


def _settings(tmp_path: Path, base: str, tag: str, jwks: str) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'cds.db'}",
        fhir_base=base,
        identifier_system=f"urn:t:{tag}",
        cds_issuers=json.dumps({ISSUER: jwks}),
        public_url=BASE,
    )


async def _push(store: Store, settings: Settings, patient_id: str) -> str:
    """Push what is pending; the id the server knows the patient by."""
    assert settings.fhir_base is not None
    async with AsyncFhirClient(settings.fhir_base) as client:
        assert (await push_pending(store, client, settings)).ok
    with store.session(read_only=True) as s:
        patient = get_ledger(s, settings.fhir_base, "Patient", patient_id)
    assert patient is not None and patient.server_id
    return patient.server_id


def _accept(cds: TestClient, signer: Signer, card: dict[str, Any]) -> httpx.Response:
    """The clinician accepts the card's referral suggestion: the EHR's feedback."""
    accept = {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-06-01T10:00:00Z",
    }
    return cds.post(f"{PV}/feedback", json={"feedback": [accept]}, headers=signer.headers(f"{PV}/feedback"))


async def test_the_ehrs_id_of_a_pushed_patient_finds_their_open_case(
    tmp_path: Path, fhir_server: str, signer: Signer, signer_and_jwks: tuple[Signer, str]
) -> None:
    # Found by our own patient id alone, a pushed patient the server knows by an id of its own was
    # shown to the clinician as eligible for case management, with a suggestion to refer them again.
    tag = uuid.uuid4().hex[:12]
    settings = _settings(tmp_path, fhir_server, tag, signer_and_jwks[1])
    with open_store(settings.database_url) as store:
        case = open_case(store, f"pat-{tag}")
        theirs = await _push(store, settings, case.patient.id)

        with TestClient(create_app(settings, store=store, clock=lambda: TODAY), base_url=BASE) as cds:
            r = cds.post(PV, json=call(theirs, **eligible_prefetch(theirs)), headers=signer.headers(PV))

    assert r.status_code == 200, r.text
    summaries = [card["summary"] for card in r.json()["cards"]]
    assert summaries[0].startswith("Open case with Dana Reed"), summaries
    assert not any("eligible" in s.lower() for s in summaries)


async def test_the_ehrs_patient_of_our_id_is_not_the_patient_we_pushed_under_another(
    tmp_path: Path, sekmet_base: str, signer: Signer, signer_and_jwks: tuple[Signer, str]
) -> None:
    # sekmet chose its own id for the Patient of our "pat-…"; on that server "pat-…" may name someone
    # else. Matched against our own ids as well, that other patient was shown "Open case with Dana
    # Reed" (another person's case), and accepting their referral answered with her case. They get no
    # card: a referral made under that id would be one patient with ours.
    tag = uuid.uuid4().hex[:12]
    settings = _settings(tmp_path, sekmet_base, tag, signer_and_jwks[1])
    ours = f"pat-{tag}"
    with (
        open_store(settings.database_url) as store,
        TestClient(create_app(settings, store=store, clock=lambda: TODAY), base_url=BASE) as cds,
    ):
        # The EHR's patient of that id was offered a referral before ours was pushed.
        earlier = cds.post(PV, json=call(ours, **eligible_prefetch(ours)), headers=signer.headers(PV))
        [card] = earlier.json()["cards"]
        assert card["summary"].startswith("Eligible for case management"), card["summary"]
        case = open_case(store, ours)
        theirs = await _push(store, settings, ours)
        assert theirs != ours

        other = cds.post(PV, json=call(ours, **eligible_prefetch(ours)), headers=signer.headers(PV))
        assert other.status_code == 200, other.text
        assert other.json()["cards"] == []
        fb = _accept(cds, signer, card)
        assert fb.status_code == 200, fb.text
        assert fb.json()["cases"] == [None]
        with store.session(read_only=True) as s:
            assert [c.id for c in list_cases(s)] == [case.id]

        mine = cds.post(PV, json=call(theirs, **eligible_prefetch(theirs)), headers=signer.headers(PV))
    assert mine.status_code == 200, mine.text
    assert mine.json()["cards"][0]["summary"].startswith("Open case with Dana Reed")


async def test_another_ehrs_patient_is_not_found_by_the_id_the_configured_server_gave_ours(
    tmp_path: Path, sekmet_base: str, signer: Signer, signer_and_jwks: tuple[Signer, str]
) -> None:
    # Ours was pushed to the configured server, which chose its own id for her Patient. An EHR on
    # another server calls about its patient of that same id (ids are each server's own: numbers on
    # many): matched through the configured server's ledger, that other person was shown "Open case
    # with Dana Reed", another patient's case in their chart. The configured server's ledger says
    # nothing of another server's ids; the configured server itself, however spelt, still finds her.
    settings = _settings(tmp_path, sekmet_base, uuid.uuid4().hex[:12], signer_and_jwks[1])
    with open_store(settings.database_url) as store:
        theirs = await _push(store, settings, open_case(store, f"pat-{settings.identifier_system[6:]}").patient.id)
        with TestClient(create_app(settings, store=store, clock=lambda: TODAY), base_url=BASE) as cds:
            elsewhere = call(theirs, **eligible_prefetch(theirs))
            elsewhere["fhirServer"] = "https://other-ehr.example.org/fhir"
            other = cds.post(PV, json=elsewhere, headers=signer.headers(PV))
            here = call(theirs, **eligible_prefetch(theirs))
            here["fhirServer"] = sekmet_base.replace("http://", "HTTP://", 1) + "/"
            mine = cds.post(PV, json=here, headers=signer.headers(PV))

    assert other.status_code == 200, other.text
    assert [c["summary"].split(":")[0] for c in other.json()["cards"]] == ["Eligible for case management"]
    assert mine.json()["cards"][0]["summary"].startswith("Open case with Dana Reed")


async def test_accepting_another_ehrs_referral_makes_its_patients_case_not_finds_ours(
    tmp_path: Path, sekmet_base: str, signer: Signer, signer_and_jwks: tuple[Signer, str]
) -> None:
    # The referral card of that other EHR's patient, accepted: feedback read its patient id through
    # the configured server's ledger, answered with our patient's case and made none, the referral lost.
    settings = _settings(tmp_path, sekmet_base, uuid.uuid4().hex[:12], signer_and_jwks[1])
    with open_store(settings.database_url) as store:
        ours = open_case(store, f"pat-{settings.identifier_system[6:]}")
        theirs = await _push(store, settings, ours.patient.id)
        with TestClient(create_app(settings, store=store, clock=lambda: TODAY), base_url=BASE) as cds:
            elsewhere = {
                **call(theirs, **eligible_prefetch(theirs)),
                "fhirServer": "https://other-ehr.example.org/fhir",
            }
            [card] = cds.post(PV, json=elsewhere, headers=signer.headers(PV)).json()["cards"]
            fb = _accept(cds, signer, card)
        assert fb.status_code == 200, fb.text
        [made] = fb.json()["cases"]
        with store.session(read_only=True) as s:
            assert made != ours.id and {c.patient.id for c in list_cases(s)} == {ours.patient.id, theirs}
