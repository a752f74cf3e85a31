"""Fixtures for the API tests: an app on a fresh SQLite store, a pinned clock, and keys of every role."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.api._metrics import ApiMetrics
from fhir_cm.config import Settings
from fhir_cm.store import ApiRole, Store, create_api_key, open_store, revoke_api_key

TODAY = dt.date(2025, 6, 30)


@dataclass(frozen=True)
class Keys:
    """One API key per kind of caller the tests need."""

    supervisor: str  # all programmes
    supervisor_hc: str  # health-care only
    supervisor_sw: str  # social-work only
    cm1: str  # case manager cm-1
    cm2: str  # case manager cm-2
    service: str
    revoked: str


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for a key."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Keys]:
    """A migrated store holding only the keys, made once; each test gets a copy of the file.

    Migrating a fresh database per test would cost more than most tests themselves.
    """
    path = tmp_path_factory.mktemp("api-template") / "api.db"
    made: dict[str, str] = {}
    with open_store(f"sqlite:///{path}") as store, store.session() as s:
        for label, role, practitioner, programme in [
            ("supervisor", ApiRole.SUPERVISOR, None, None),
            ("supervisor_hc", ApiRole.SUPERVISOR, None, "health-care"),
            ("supervisor_sw", ApiRole.SUPERVISOR, None, "social-work"),
            ("cm1", ApiRole.CASE_MANAGER, "cm-1", None),
            ("cm2", ApiRole.CASE_MANAGER, "cm-2", None),
            ("service", ApiRole.SERVICE, None, None),
            ("revoked", ApiRole.SUPERVISOR, None, None),
        ]:
            key, secret = create_api_key(s, name=label, role=role, practitioner_id=practitioner, programme=programme)
            made[label] = secret
            if label == "revoked":
                revoke_api_key(s, key.key_id)
    with sqlite3.connect(path) as conn:  # fold the WAL into the file, so one file is the whole store
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path, Keys(**made)


@pytest.fixture
def api_store(tmp_path: Path, _template: tuple[Path, Keys]) -> Iterator[Store]:
    """A store in a SQLite file of this test's own, holding the keys and nothing else."""
    path = tmp_path / "api.db"
    shutil.copyfile(_template[0], path)
    with open_store(f"sqlite:///{path}") as store:
        yield store


@pytest.fixture
def keys(_template: tuple[Path, Keys]) -> Keys:
    """Keys of every role, and one revoked (they are in every test's store)."""
    return _template[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with no FHIR server; the store is handed to the app directly."""
    return Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}", fhir_base=None)


@pytest.fixture(scope="session")
def _shared_app(_template: tuple[Path, Keys]) -> Iterator[FastAPI]:
    """One app for the session: building the routes costs more than a test (its state is reset per test)."""
    with open_store(f"sqlite:///{_template[0]}") as store:
        yield create_app(Settings(database_url="sqlite://"), store=store, clock=lambda: TODAY)


@pytest.fixture
def app(_shared_app: FastAPI, api_store: Store, settings: Settings) -> FastAPI:
    """The API on this test's store and settings, with today pinned to ``TODAY`` and fresh metrics."""
    _shared_app.state.store = api_store
    _shared_app.state.settings = settings
    _shared_app.state.clock = lambda: TODAY
    _shared_app.state.metrics = ApiMetrics()
    return _shared_app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client for the app (errors inside the app fail the test instead of becoming 500s)."""
    with TestClient(app) as c:
        yield c


def new_case(**fields: Any) -> dict[str, Any]:
    """A minimal valid create-case body; keyword arguments override fields."""
    body: dict[str, Any] = {
        "programme": "health-care",
        "start": "2025-01-10",
        "patient": {"kind": "patient", "id": "patient-1", "name": "Ada Example"},
        "case_manager": {"kind": "practitioner", "id": "cm-1"},
    }
    return body | fields


def create(client: TestClient, key: str, **fields: Any) -> dict[str, Any]:
    """Create a case through the API and return its body (asserting it was created)."""
    response = client.post("/api/v1/cases", json=new_case(**fields), headers=bearer(key))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
