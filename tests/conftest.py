"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import sekmet_server


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real R4 FHIR server (sekmet-fhir, in-process) shared by the whole session.

    Data written by one test stays for the next: tag what you create with your own identifiers
    and search by them, as you would on a shared server.
    """
    with sekmet_server(tmp_path_factory.mktemp("fhir-server")) as server:
        yield server.base_url
