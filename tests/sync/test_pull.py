"""Pull logic over a mocked server (respx): paging, watermarks and their overlap, quarantine, dedupe."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party, Period
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import case_to_resources, episode_key
from fhir_cm.store import Store, get_watermark, list_cases, list_quarantine, open_store
from fhir_cm.sync import PULL_OVERLAP, pull

BASE = "https://fhir.example.test/r4"
SYSTEM = "urn:fhir-cm:unit"


def episode(n: int, last_updated: str, version: str = "1") -> dict[str, Any]:
    case = Case(id=f"case-{n}", programme="health-care", period=Period(start=dt.date(2024, 1, 1)),
                patient=Party(kind="patient", id=f"p{n}"))
    eoc = case_to_resources(case, "R4", SYSTEM)[episode_key(case)]
    return {**eoc, "id": f"eoc-{n}", "meta": {"versionId": version, "lastUpdated": last_updated}}


def bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "searchset", "link": links,
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}


class FakeServer:
    """EpisodeOfCare search in two pages; every other type empty. Records the queries it got."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.queries: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(urlsplit(BASE).path).strip("/")
        query = parse_qs(request.url.query.decode())
        if path == "metadata":
            return httpx.Response(200, json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
                                             "status": "active", "kind": "instance", "format": ["json"]})
        if path != "EpisodeOfCare":
            return httpx.Response(200, json=bundle([]))
        if "page" in query:
            return httpx.Response(200, json=bundle(self.pages[int(query["page"][0])]))
        self.queries.append(query)
        nxt = f"{BASE}/EpisodeOfCare?page=1" if len(self.pages) > 1 else None
        return httpx.Response(200, json=bundle(self.pages[0], nxt))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as s:
        yield s


SETTINGS = Settings(identifier_system=SYSTEM, fhir_base=BASE)


async def run_pull(store: Store, server: FakeServer, **kwargs: Any) -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.route().mock(side_effect=server)
        async with AsyncFhirClient(BASE) as client:
            return await pull(store, client, SETTINGS, **kwargs)


async def test_pages_are_followed_and_the_watermark_moves_to_the_latest_seen(store: Store) -> None:
    server = FakeServer([[episode(1, "2024-05-01T10:00:00Z")], [episode(2, "2024-05-01T12:30:00Z")]])
    report = await run_pull(store, server)
    assert (report.fetched, report.new_cases) == (2, 2)
    with store.session(read_only=True) as s:
        assert [c.id for c in list_cases(s)] == ["case-1", "case-2"]
        assert get_watermark(s, BASE, "EpisodeOfCare") == "2024-05-01T12:30:00Z"
    assert server.queries[0]["identifier"] == [f"{SYSTEM}|"]
    assert "_lastUpdated" not in server.queries[0]  # first pull: everything


async def test_the_next_pull_starts_an_overlap_before_the_watermark_and_drops_what_it_saw(store: Store) -> None:
    pages = [[episode(1, "2024-05-01T10:00:00Z")], [episode(2, "2024-05-01T12:30:00Z")]]
    await run_pull(store, FakeServer(pages))
    again = FakeServer(pages)
    report = await run_pull(store, again)
    since = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC) - PULL_OVERLAP
    assert again.queries[0]["_lastUpdated"] == [f"gt{since.isoformat()}"]
    # The server here ignores the bound; what is not newer than the ledger is unchanged.
    assert (report.new_cases, report.updated_cases) == (0, 0)
    assert report.unchanged == 1  # case-2; case-1 is older than the bound and filtered out here


async def test_since_replaces_the_watermark(store: Store) -> None:
    server = FakeServer([[episode(1, "2024-05-01T10:00:00Z")]])
    await run_pull(store, server, since="2024-04-01T00:00:00Z")
    assert server.queries[0]["_lastUpdated"] == ["gt2024-04-01T00:00:00+00:00"]


async def test_a_resource_the_strict_model_rejects_is_quarantined_and_the_rest_pulled(store: Store) -> None:
    broken = episode(9, "2024-05-01T11:00:00Z")
    del broken["status"]  # EpisodeOfCare.status is 1..1
    broken["patient"] = {"reference": "Patient/p9", "display": "Jane Secret"}
    server = FakeServer([[episode(1, "2024-05-01T10:00:00Z"), broken]])
    report = await run_pull(store, server)
    assert (report.new_cases, report.quarantined) == (1, 1)
    with store.session(read_only=True) as s:
        (held,) = list_quarantine(s)
        assert [c.id for c in list_cases(s)] == ["case-1"]
        assert get_watermark(s, BASE, "EpisodeOfCare") == "2024-05-01T11:00:00Z"  # seen, even if set aside
    assert (held.resource_type, held.server_id) == ("EpisodeOfCare", "eoc-9")
    assert "status" in held.reason and "Jane" not in held.reason
    assert "Jane Secret" in held.raw  # kept as received, for a person to look at


async def test_others_resources_are_left_out_of_an_identifier_pull(store: Store) -> None:
    foreign = episode(3, "2024-05-01T10:00:00Z")
    foreign["identifier"] = [{"system": "urn:someone-else", "value": str(uuid.uuid4())}]
    report = await run_pull(store, FakeServer([[foreign]]))
    assert (report.fetched, report.new_cases) == (0, 0)


async def test_a_newer_version_updates_the_case(store: Store) -> None:
    await run_pull(store, FakeServer([[episode(1, "2024-05-01T10:00:00Z")]]))
    changed = episode(1, "2024-05-02T10:00:00Z", version="2")
    changed["status"] = "onhold"
    report = await run_pull(store, FakeServer([[changed]]))
    assert report.updated_cases == 1
    with store.session(read_only=True) as s:
        (case,) = list_cases(s)
    assert case.status == "on-hold"


class CaseServer:
    """Every case type, one page each, from a dict of resources by type (the query is ignored)."""

    def __init__(self, by_type: dict[str, list[dict[str, Any]]]) -> None:
        self.by_type = by_type

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(urlsplit(BASE).path).strip("/")
        if path == "metadata":
            return FakeServer([])(request)
        return httpx.Response(200, json=bundle(self.by_type.get(path, [])))


async def test_a_closed_case_comes_in_whole_on_a_first_pull(store: Store) -> None:
    """No open case of the patient places its Conditions, Goals and referrals: the CarePlan that names them does."""
    from tests.mapping.builders import full_case

    case = full_case(status="closed", status_history=[
        {"status": "active", "start": "2024-01-02", "end": "2024-03-01"},
        {"status": "closed", "start": "2024-03-01"},
    ], period={"start": "2024-01-02", "end": "2024-03-01"})
    resources = case_to_resources(case, "R4", SYSTEM)
    ids = {key: f"id-{n}" for n, key in enumerate(resources)}
    on_server = case_to_resources(case, "R4", SYSTEM, server_ids=ids)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for key, r in on_server.items():
        by_type.setdefault(key.type, []).append(
            {**r, "id": ids[key], "meta": {"versionId": "1", "lastUpdated": "2024-05-01T10:00:00Z"}})

    report = await run_pull(store, CaseServer(by_type))

    assert (report.unplaced, report.quarantined, report.new_cases) == (0, 0, 1)
    with store.session(read_only=True) as s:
        (pulled,) = list_cases(s)
    assert pulled.model_dump() == case.model_dump()
