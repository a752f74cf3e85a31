"""A hook call whose data must be read from an EHR server that cannot answer: the EHR waits on the
answer in the clinician's workflow, so what is read there is read within FHIR_CM_CDS_DEADLINE, each
request sent again only where the wait fits, and the call then answers 412 (CDS Hooks 2.0: the data
could be had neither by prefetch nor from the server) — not a 422 after ~11 s of the FHIR client's
back-off on a closed port, nor minutes on a server that never answers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_cm import cds
from fhir_cm.api import create_app
from fhir_cm.config import Settings
from fhir_cm.store import Store

from .conftest import BASE, TODAY, Signer
from .test_cds_hooks import PV, call, eligible_prefetch
from .unreachable import closed_port, silent_server

TOKEN = "ehr-token-unreachable-7"
#: The queries a patient-view call with nothing prefetched makes: one per prefetch template.
QUERIES = len(cds.service("fhir-cm-patient-view").prefetch)  # type: ignore[union-attr]


@pytest.fixture
def hurried(cds_store: Store, cds_settings: Settings) -> Iterator[TestClient]:
    """The app with a deadline of half a second for reading the EHR's server."""
    app = create_app(cds_settings.model_copy(update={"cds_deadline": 0.5}), store=cds_store, clock=lambda: TODAY)
    with TestClient(app, base_url=BASE) as client:
        yield client


def _from(server: str, pid: str, **prefetch: Any) -> dict[str, Any]:
    body = call(pid, **prefetch)
    body["fhirServer"] = server
    body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300}
    return body


def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing in the logs the EHR's token, or a traceback."""
    assert TOKEN not in caplog.text
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text


def test_a_server_that_never_answers_is_given_the_deadline_once(
    hurried: TestClient, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """Each query is sent once and waited on for the deadline (they go at once); then 412 saying which
    data was not had and why. It was 422 after each request had been sent four times, each waited on
    up to FHIR_CM_TIMEOUT (30 s) — here the server hangs up after 1.5 s, as a gateway would, else that
    took minutes."""
    caplog.set_level(logging.DEBUG)
    with silent_server(hang_up_after=1.5) as server:
        r = hurried.post(PV, json=_from(server.base, "p-silent"), headers=signer.headers(PV))
        sent = server.connections()
    assert r.status_code == 412, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "the EHR's server did not answer the patient query within 0.5 s" in r.json()["detail"]
    assert 0 < sent <= QUERIES  # no query sent twice: no retry fits in the deadline
    _quiet(caplog)


def test_a_closed_port_is_tried_again_once_at_most(
    hurried: TestClient, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection refused: each request sent again once at most, after a short wait that fits in the
    deadline, then 412 naming the host and what happened. It was 422 "refused the patient query
    (TransientError)" after three retries of each query, one query after the other (~11 s)."""
    caplog.set_level(logging.DEBUG)
    server = closed_port()
    r = hurried.post(PV, json=_from(server, "p-closed"), headers=signer.headers(PV))
    assert r.status_code == 412, r.text
    host = server.removeprefix("http://").removesuffix("/fhir")
    assert f"could not be reached for the patient query: connection refused by {host}" in r.json()["detail"]
    retried = [rec for rec in caplog.records if rec.name == "fhir_cm.fhir" and "retrying" in rec.getMessage()]
    assert len(retried) <= QUERIES
    _quiet(caplog)


def test_what_was_prefetched_still_answers_when_the_server_does_not(
    hurried: TestClient, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """The patient's record prefetched, the encounters not and the server silent: the call answers 200
    with the card what it had makes (the high-risk condition) — the deadline fails the query under
    way, not the call."""
    caplog.set_level(logging.WARNING)
    prefetch = eligible_prefetch("p-partial")
    del prefetch["encounters"]
    with silent_server(hang_up_after=1.5) as server:
        r = hurried.post(PV, json=_from(server.base, "p-partial", **prefetch), headers=signer.headers(PV))
        sent = server.connections()
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert card["summary"].startswith("Eligible for case management: a high-risk condition") and sent <= 1
    assert "did not answer within 0.5 s (encounters)" in caplog.text
    _quiet(caplog)
