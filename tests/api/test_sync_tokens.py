"""The API's pushes share one SMART token: each ``/sync/push`` built a client that asked for its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.servers import RunningServer
from tests.token_gate import TokenGate, gated_settings, gated_smart_server

from .conftest import Keys, bearer, create

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, TokenGate, Path]]:
    with gated_smart_server(tmp_path_factory.mktemp("gated-api")) as served:
        yield served


def test_two_pushes_through_the_api_ask_the_token_endpoint_once(
    app: FastAPI, keys: Keys, gated: tuple[RunningServer, TokenGate, Path]
) -> None:
    server, gate, key = gated
    app.state.settings = gated_settings(
        server, key, database_url="sqlite://", identifier_system=f"urn:fhir-cm:test:{uuid.uuid4().hex}"
    )
    with TestClient(app) as client:
        for case_id in ("tokens-1", "tokens-2"):
            create(client, keys.supervisor, id=case_id)
            response = client.post("/api/v1/sync/push", headers=bearer(keys.supervisor))
            assert response.status_code == 200, response.text
            assert response.json()["report"]["created"] >= 1

    assert (gate.token_requests, gate.discoveries) == (1, 1)
    assert len(set(gate.borne)) == 1
