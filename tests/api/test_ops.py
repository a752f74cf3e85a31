"""Health, readiness, metrics, request ids and the access log: open, and free of PHI."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from fhir_cm.config import Settings
from fhir_cm.store import Store

from .conftest import Keys, bearer, create


def test_healthz_needs_no_credentials(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_checks_the_store(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"store": "ok", "facade": "ok", "fhir": "not-configured"}}


def test_readyz_is_503_until_the_facade_index_is_built_and_the_index_answers_at_once_after(app: FastAPI) -> None:
    from fhir_cm.api._app import _warm

    app.state.facade_ready.clear()
    with TestClient(app) as client:
        assert app.state.facade_ready.wait(timeout=60)  # the start-up warming ran and is over
        app.state.facade_ready.clear()  # as if it were still running
        warming = client.get("/readyz")
        assert (warming.status_code, warming.json()["checks"]["facade"]) == (503, "warming")
        _warm(app, serving=False)
        assert client.get("/readyz").json() == {
            "status": "ready",
            "checks": {"store": "ok", "facade": "ok", "fhir": "not-configured"},
        }


def test_shutdown_waits_for_the_start_up_warming_before_the_store_is_closed(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An in-memory store shares one connection: closed under a warming thread, SQLite may crash."""
    import threading

    import fhir_cm.api._app as app_module

    warming, release, finished = threading.Event(), threading.Event(), threading.Event()

    def held_warming(*args: object, **kwargs: object) -> int:
        warming.set()
        release.wait(timeout=60)
        finished.set()
        return 0

    monkeypatch.setattr(app_module, "warm_case_cache", held_warming)
    client = TestClient(app)
    client.__enter__()
    assert warming.wait(timeout=60)
    shutdown = threading.Thread(target=client.__exit__, args=(None, None, None))
    shutdown.start()
    shutdown.join(timeout=0.5)
    stopped_early = not shutdown.is_alive()  # with the warming held, a shutdown that waits cannot be over
    release.set()
    shutdown.join(timeout=60)
    assert not stopped_early and finished.is_set() and not shutdown.is_alive()


def test_a_shutdown_during_the_start_up_warming_stops_it_at_the_case_under_way(
    api_store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``systemctl stop`` or a pod's termination soon after a start: the shutdown waited until the
    warming had mapped every stored case (seconds a thousand cases, minutes a large store), past a
    service manager's grace period, a second signal unable to cut it short (the event loop waits on
    the warming's thread). The warming stops after the case it is mapping."""
    import threading

    from fhir_cm.api import create_app
    from fhir_cm.api.facade import FacadeIndex
    from fhir_cm.store import CaseRecord, save_case
    from fhir_cm.synthetic import generate_cases

    with api_store.session() as s:
        for case in generate_cases(5, seed=4713):
            save_case(s, case)
    mapped: list[str] = []
    warming, release = threading.Event(), threading.Event()
    served = FacadeIndex._served

    def held(self: FacadeIndex, session: object, record: CaseRecord, *args: object, **kwargs: object) -> object:
        mapped.append(record.case.id)
        warming.set()
        release.wait(timeout=60)
        return served(self, session, record, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FacadeIndex, "_served", held)
    app = create_app(settings, store=api_store)
    client = TestClient(app)
    client.__enter__()
    assert warming.wait(timeout=60)
    shutdown = threading.Thread(target=client.__exit__, args=(None, None, None))
    shutdown.start()
    assert app.state.stopping.wait(timeout=60)  # the shutdown has begun: the warming is told
    release.set()
    shutdown.join(timeout=60)
    assert not shutdown.is_alive()
    assert len(mapped) == 1  # the case under way, none after


def test_the_start_up_decodes_each_case_once_for_the_read_routes_and_the_facade(
    api_store: Store, settings: Settings, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The façade's index maps the cases the start-up decoded into the read routes' cache: each stored
    case is decoded once, where the index read and decoded every case again (a sixth of its start-up)."""
    import fhir_cm.store._cases as stored_cases
    from fhir_cm.api import create_app
    from fhir_cm.store import save_case
    from fhir_cm.synthetic import generate_cases

    saved = list(generate_cases(8, seed=4714))
    with api_store.session() as s:
        for case in saved:
            save_case(s, case)
    decoded: Counter[str] = Counter()
    decode = stored_cases._decode

    def counted(row: Any) -> Any:
        decoded[row.case_id] += 1
        return decode(row)

    monkeypatch.setattr(stored_cases, "_decode", counted)
    app = create_app(settings, store=api_store)
    with TestClient(app) as client:
        assert app.state.facade_ready.wait(timeout=60)
        episodes = client.get("/fhir/EpisodeOfCare", params={"_count": 50}, headers=bearer(keys.service))
        assert episodes.status_code == 200
        assert episodes.json()["total"] == len(saved)
    assert decoded == dict.fromkeys((c.id for c in saved), 1)


def test_readyz_is_503_when_the_store_is_unreachable(app: FastAPI) -> None:
    app.state.store = Store(create_engine("sqlite:////nonexistent-dir/fhir-cm.db"))
    with TestClient(app) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    assert response.json()["checks"]["store"] == "unreachable"


@pytest.mark.parametrize(("answer", "expected"), [(200, 200), (503, 503)])
def test_readyz_reads_the_fhir_servers_metadata(app: FastAPI, answer: int, expected: int) -> None:
    app.state.settings = Settings(database_url="sqlite://", fhir_base="http://fhir.test/r4")
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-01-01",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
    }
    with respx.mock(assert_all_called=True) as mock:
        mock.get("http://fhir.test/r4/metadata").mock(return_value=httpx.Response(answer, json=statement))
        with TestClient(app) as client:
            response = client.get("/readyz")
    assert response.status_code == expected
    assert response.json()["checks"]["fhir"] == ("ok" if expected == 200 else "unreachable")


def test_metrics_count_requests_by_route_template(client: TestClient, keys: Keys) -> None:
    create(client, keys.cm1, id="case-a")
    client.get("/api/v1/cases/case-a", headers=bearer(keys.cm1))
    client.get("/api/v1/cases/other", headers=bearer(keys.cm1))
    text = client.get("/metrics").text
    assert 'fhir_cm_http_requests_total{method="GET",route="/api/v1/cases/{case_id}",status="200"} 1.0' in text
    assert 'fhir_cm_http_requests_total{method="GET",route="/api/v1/cases/{case_id}",status="404"} 1.0' in text
    assert "fhir_cm_http_request_duration_seconds_bucket" in text
    assert 'fhir_cm_outbox_depth{status="pending"} 1.0' in text
    assert "case-a" not in text


def test_every_response_has_a_request_id(client: TestClient) -> None:
    generated = client.get("/healthz").headers["X-Request-Id"]
    assert len(generated) == 32
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    # An insane incoming id is replaced, not echoed.
    replaced = client.get("/healthz", headers={"X-Request-Id": "x" * 500}).headers["X-Request-Id"]
    assert replaced != "x" * 500 and len(replaced) == 32


def test_the_access_log_has_ids_and_routes_but_no_phi(
    client: TestClient, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    from fhir_cm.api import JsonFormatter

    caplog.set_level(logging.INFO, logger="fhir_cm")
    create(
        client,
        keys.cm1,
        id="case-a",
        patient={"kind": "patient", "id": "pat-777", "name": "Grace Hidden"},
        plan_summary="confidential note",
    )
    client.get("/api/v1/cases", params={"patient": "pat-777"}, headers=bearer(keys.cm1))
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "fhir_cm.api.access"]
    assert len(lines) == 2
    entries = [json.loads(line) for line in lines]
    assert [(e["method"], e["route"], e["status"]) for e in entries] == [
        ("POST", "/api/v1/cases", 201),
        ("GET", "/api/v1/cases", 200),
    ]
    assert all(e["principal"] and e["request_id"] and e["duration_ms"] >= 0 for e in entries)
    everything = "\n".join(lines) + caplog.text
    for phi in ("Grace Hidden", "pat-777", "confidential note", keys.cm1):
        assert phi not in everything
