"""Push fixtures: a store of the test's own, a test-unique identifier system, clients for the real server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, open_store


@pytest.fixture
def system() -> str:
    """The test's own identifier system: the server is shared by the whole session."""
    return f"urn:fhir-cm:test:{uuid.uuid4().hex}"


@pytest.fixture
def settings(tmp_path: Path, fhir_server: str, system: str) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        fhir_base=fhir_server,
        identifier_system=system,
        fhir_version="auto",
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings.database_url) as opened:
        yield opened


@pytest.fixture
async def client(fhir_server: str) -> AsyncIterator[AsyncFhirClient]:
    """The pusher's client, enforcing capabilities as a production client does."""
    async with AsyncFhirClient(fhir_server) as fhir:
        yield fhir


@pytest.fixture
async def raw(fhir_server: str) -> AsyncIterator[AsyncFhirClient]:
    """A client for inspecting and editing the server behind the pusher's back (sekmet leaves Goal and
    CareTeam out of its CapabilityStatement, so this one does not enforce it)."""
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        yield fhir
