"""Fixtures shared by every test package: the real FHIR servers the tests run against."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from fhir_cm.fhir._tokens import SHARED_TOKENS
from tests.hapi_server import hapi_server
from tests.memory_server import memory_server
from tests.servers import RunningServer, sekmet_server

#: The servers ``fhir_server`` runs each test against; ``FHIR_CM_TEST_SERVERS`` narrows the list
#: (e.g. ``sekmet`` for a quick run without Java).
SERVERS = ("sekmet", "hapi-r4")


def _selected_servers() -> list[str]:
    chosen = os.environ.get("FHIR_CM_TEST_SERVERS")
    if not chosen:
        return list(SERVERS)
    names = [name.strip() for name in chosen.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise pytest.UsageError(f"FHIR_CM_TEST_SERVERS names unknown servers {unknown}; known: {list(SERVERS)}")
    return names


@pytest.fixture(autouse=True)
def _fresh_tokens() -> Iterator[None]:
    """Each test starts with no SMART token or discovered endpoint kept by the process: tests serving
    token endpoints at the same URL would otherwise be handed each other's tokens."""
    SHARED_TOKENS.clear()
    yield
    SHARED_TOKENS.clear()


@pytest.fixture(scope="session")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """sekmet-fhir, a tolerant R4 server, in-process, shared by the whole session."""
    with sekmet_server(tmp_path_factory.mktemp("fhir-server")) as server:
        yield server


@pytest.fixture(scope="session")
def memory_fhir() -> Iterator[RunningServer]:
    """The single-threaded in-memory R4 server (``tests/memory_server.py``) in a process of its own."""
    with memory_server() as server:
        yield server


@pytest.fixture(scope="session")
def hapi_r4() -> Iterator[RunningServer]:
    """HAPI FHIR JPA (R4, H2 in memory) in a JVM of its own, shared by the whole session."""
    with hapi_server("R4") as server:
        yield server


@pytest.fixture(scope="session")
def hapi_r5() -> Iterator[RunningServer]:
    """HAPI FHIR JPA (R5, H2 in memory) in a JVM of its own, shared by the whole session."""
    with hapi_server("R5") as server:
        yield server


@pytest.fixture(scope="session", params=_selected_servers())
def fhir_server(request: pytest.FixtureRequest) -> str:
    """Base URL of a real R4 FHIR server shared by the whole session — each test that asks for it
    runs against sekmet and against HAPI.

    Data written by one test stays for the next: tag what you create with your own identifiers
    and search by them, as you would on a shared server.
    """
    name = "sekmet" if request.param == "sekmet" else "hapi_r4"
    return request.getfixturevalue(name).base_url


@pytest.fixture(scope="session")
def sekmet_base(sekmet: RunningServer) -> str:
    """Base URL of the sekmet server, for tests of sekmet itself (its canary) or of what only it offers."""
    return sekmet.base_url
