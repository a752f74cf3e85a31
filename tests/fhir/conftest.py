"""Recorded HAPI-shaped responses (fixtures/hapi/) and a client wired to a respx router."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from fhir_cm.fhir import AsyncFhirClient, Capabilities, RetryPolicy

HAPI_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "hapi"
BASE = "https://hapi.fhir.org/baseR4"


def search_answer(*resources: dict[str, Any]) -> httpx.Response:
    """A server's 200 answer to a search: ``resources`` as its matches, in that order."""
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": entries})


class Hapi:
    """Access to ``fixtures/hapi``: bodies by file name, full responses by ``responses.json`` name."""

    def __init__(self) -> None:
        self.index: dict[str, Any] = json.loads((HAPI_DIR / "responses.json").read_text())

    def json(self, name: str) -> Any:
        return json.loads((HAPI_DIR / f"{name}.json").read_text())

    def response(self, name: str, **headers: str) -> httpx.Response:
        spec = self.index[name]
        body = (HAPI_DIR / spec["body"]).read_bytes()
        return httpx.Response(spec["status"], headers={**spec["headers"], **headers}, content=body)

    def capabilities(self, name: str = "metadata-r4") -> Capabilities:
        return Capabilities.from_statement(self.json(name))


class Sleeps:
    """An injectable ``sleep`` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(scope="session")
def hapi() -> Hapi:
    return Hapi()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """Every HTTP request must hit a declared route; unmatched ones fail the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(router: respx.MockRouter, sleeps: Sleeps) -> AsyncIterator[AsyncFhirClient]:
    """A client for the HAPI base with deterministic back-off (no jitter) and recorded sleeps."""
    policy = RetryPolicy(max_attempts=3, backoff_base=1.0, rng=lambda: 1.0)
    async with AsyncFhirClient(BASE, retry=policy, sleep=sleeps) as fhir:
        yield fhir
