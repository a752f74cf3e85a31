"""The audience a CDS Hooks token must name is this service's configured URL, never one the caller
picks: the request's ``Host`` is the caller's to write, so a token an EHR signed for another CDS
service (same issuer, that service's ``aud``) would otherwise be accepted here by naming its host."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.store import Store

from .conftest import BASE, ISSUER, TODAY, Signer

OTHER = "https://other-cds.example.org"


def _client(store: Store, jwks: str, public_url: str | None) -> TestClient:
    settings = Settings(
        database_url="sqlite://", fhir_base=None, cds_issuers=json.dumps({ISSUER: jwks}), public_url=public_url
    )
    return TestClient(create_app(settings, store=store, clock=lambda: TODAY), base_url=BASE)


@pytest.fixture
def unconfigured(cds_store: Store, signer_and_jwks: tuple[Signer, str]) -> Iterator[TestClient]:
    with _client(cds_store, signer_and_jwks[1], None) as client:
        yield client


def test_a_token_for_another_service_is_refused_whatever_host_the_caller_names(
    unconfigured: TestClient, signer: Signer
) -> None:
    token = signer.token(OTHER + "/cds-services")
    # An absolute URL: the test client sends it with ``Host: other-cds.example.org``, as a caller can.
    r = unconfigured.get(OTHER + "/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert "FHIR_CM_PUBLIC_URL" in r.json()["detail"]


def test_without_a_public_url_no_call_is_taken_even_one_naming_the_host_called(
    unconfigured: TestClient, signer: Signer
) -> None:
    r = unconfigured.get("/cds-services", headers=signer.headers("/cds-services"))
    assert r.status_code == 401, r.text


def test_with_a_public_url_only_tokens_naming_it_are_taken(
    cds_store: Store, signer_and_jwks: tuple[Signer, str], signer: Signer
) -> None:
    with _client(cds_store, signer_and_jwks[1], "https://cm.example.org") as client:
        ours = {"Authorization": f"Bearer {signer.token('https://cm.example.org/cds-services')}"}
        assert client.get("/cds-services", headers=ours).status_code == 200
        theirs = {"Authorization": f"Bearer {signer.token(OTHER + '/cds-services')}"}
        assert client.get(OTHER + "/cds-services", headers=theirs).status_code == 401


@pytest.mark.parametrize("public_url", [None, "https://cm.example.org"])
def test_a_server_started_with_issuers_and_no_public_url_says_so_once(
    cds_store: Store, public_url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        database_url="sqlite://",
        fhir_base=None,
        cds_issuers=json.dumps({ISSUER: "https://ehr.example/jwks"}),
        public_url=public_url,
    )
    with caplog.at_level("WARNING", logger="fhir_cm.api"):
        create_app(settings, store=cds_store, serving=True)

    said = [r.getMessage() for r in caplog.records if "FHIR_CM_PUBLIC_URL" in r.getMessage()]
    if public_url:
        assert said == []
    else:
        assert len(said) == 1 and "every hook call is refused" in said[0], said
