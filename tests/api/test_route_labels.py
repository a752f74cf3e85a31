"""Logs and the open ``/metrics`` name requests by route template only: no identifier a client put in a path."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.testclient import TestClient

from fhir_cm.api import JsonFormatter
from fhir_cm.api._middleware import UNMATCHED, _route

from .conftest import Keys, bearer

SECRET_IDS = ("pat-4711", "case-0815", "enc-31337", "ver-9")


def _requests(client: TestClient, keys: Keys) -> None:
    pat, case, enc, ver = SECRET_IDS
    auth = bearer(keys.service)
    client.get(f"/fhir/Patient/{pat}/CarePlan", headers=auth)
    client.get(f"/fhir/Patient/{pat}/$everything", headers=auth)
    client.get(f"/fhir/Patient/{pat}/_history/{ver}", headers=auth)
    client.put(f"/fhir/Patient/{pat}", json={"resourceType": "Patient", "id": pat}, headers=auth)
    client.delete(f"/fhir/Encounter/{enc}", headers=auth)
    client.get(f"/{pat}/{case}")
    client.get(f"/api/v1/cases/{case}/unknown/{enc}", headers=bearer(keys.cm1))
    client.post(f"/api/v1/cases/{case}/contacts/{enc}", json={}, headers=bearer(keys.cm1))
    client.get(f"/api/v1/cases/{case}", headers=bearer(keys.cm1))  # matched: a template
    client.get("/api/v1/cases/cases", headers=bearer(keys.cm1))  # an id that looks like a path segment


def test_unmatched_paths_leave_no_identifier_in_logs_or_metrics(
    client: TestClient, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fhir_cm")
    _requests(client, keys)
    metrics = client.get("/metrics").text

    lines = [JsonFormatter().format(r) for r in caplog.records if r.name.startswith("fhir_cm")]
    everything = "\n".join(lines) + caplog.text + metrics
    for secret in SECRET_IDS:
        assert secret not in everything
    routes = {json.loads(line)["route"] for line in lines if '"route"' in line}
    labels = set(re.findall(r'route="([^"]*)"', metrics))
    assert UNMATCHED in routes and UNMATCHED in labels
    assert "/api/v1/cases/{case_id}" in routes
    # Every label is a template: a fixed word, or path segments that are literal or {parameters}.
    allowed = re.compile(r"^(/([A-Za-z][A-Za-z0-9_]*|\{[a-z_]+\}))+$")
    assert all(label == UNMATCHED or allowed.match(label) for label in labels | routes), labels | routes


def test_cardinality_stays_bounded_however_many_ids_are_tried(client: TestClient, keys: Keys) -> None:
    for n in range(30):
        client.get(f"/fhir/Patient/p{n}/CarePlan", headers=bearer(keys.service))
        client.get(f"/nowhere/p{n}")
        client.get(f"/api/v1/cases/c{n}", headers=bearer(keys.cm1))
    labels = set(
        re.findall(r'fhir_cm_http_requests_total\{method="[A-Z]+",route="([^"]*)"', client.get("/metrics").text)
    )
    assert len(labels) <= 4, labels


def test_a_route_template_is_used_only_when_it_names_the_whole_path() -> None:
    class Route:
        path_format = "/cases/{case_id}"
        path_regex = re.compile(r"^/cases/(?P<case_id>[^/]+)$")

    # Relative to a router whose prefix cannot be told apart from ids: the fixed label.
    assert _route({"route": Route(), "path": "/api/v1/cases/pat-1", "path_params": {"case_id": "pat-1"}}) == UNMATCHED
    assert _route({"route": Route(), "path": "/cases/pat-1", "path_params": {"case_id": "pat-1"}}) == "/cases/{case_id}"
    assert _route({"path": "/anything/pat-1"}) == UNMATCHED
