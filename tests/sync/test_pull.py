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
from fhir_cm.domain import Acuity, Case, GoalAchievement, Party, Period
from fhir_cm.fhir import AsyncFhirClient, FhirError
from fhir_cm.mapping import case_to_resources, episode_key
from fhir_cm.store import (
    OutboxStatus,
    Store,
    claim_outbox,
    mark_push_failed,
    get_case,
    get_case_record,
    get_watermark,
    list_cases,
    list_ledger,
    list_quarantine,
    open_store,
    outbox_counts,
    save_case,
)
from fhir_cm.sync import PULL_OVERLAP, _pull, pull

BASE = "https://fhir.example.test/r4"
SYSTEM = "urn:fhir-cm:unit"


def episode(n: int, last_updated: str, version: str = "1") -> dict[str, Any]:
    case = Case(
        id=f"case-{n}",
        programme="health-care",
        period=Period(start=dt.date(2024, 1, 1)),
        patient=Party(kind="patient", id=f"p{n}"),
    )
    eoc = case_to_resources(case, "R4", SYSTEM)[episode_key(case)]
    return {**eoc, "id": f"eoc-{n}", "meta": {"versionId": version, "lastUpdated": last_updated}}


def bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


class FakeServer:
    """EpisodeOfCare search in two pages; every other type empty. Records the queries it got."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.queries: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(urlsplit(BASE).path).strip("/")
        query = parse_qs(request.url.query.decode())
        if path == "metadata":
            return httpx.Response(
                200,
                json={
                    "resourceType": "CapabilityStatement",
                    "fhirVersion": "4.0.1",
                    "status": "active",
                    "kind": "instance",
                    "format": ["json"],
                },
            )
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


async def test_a_stamp_no_datetime_can_hold_leaves_the_resource_undated_and_the_pull_going(store: Store) -> None:
    leap = episode(2, "2024-12-31T23:59:60Z")  # a leap second: a FHIR instant, no Python datetime
    report = await run_pull(store, FakeServer([[episode(1, "2024-05-01T10:00:00Z"), leap]]))
    assert (report.fetched, report.new_cases, report.quarantined) == (2, 2, 0)
    with store.session(read_only=True) as s:
        assert get_watermark(s, BASE, "EpisodeOfCare") == "2024-05-01T10:00:00Z"


async def test_a_stamp_in_the_future_does_not_hide_later_changes(store: Store) -> None:
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await run_pull(store, FakeServer([[episode(1, "2024-05-01T10:00:00Z"), episode(2, ahead)]]))
    with store.session(read_only=True) as s:
        assert get_watermark(s, BASE, "EpisodeOfCare") == "2024-05-01T10:00:00Z"  # not a year ahead
    changed = episode(1, "2024-06-01T10:00:00Z", version="2")
    changed["status"] = "onhold"
    again = FakeServer([[changed]])
    report = await run_pull(store, again)
    assert report.updated_cases == 1
    assert again.queries[0]["_lastUpdated"][0].startswith("gt2024-05-01T09:59:00")


async def test_a_part_of_a_resource_never_overwrites_the_case(store: Store) -> None:
    await run_pull(store, FakeServer([[episode(1, "2024-05-01T10:00:00Z")]]))
    with store.session(read_only=True) as s:
        before = get_case(s, "case-1")
    part = episode(1, "2024-05-02T10:00:00Z", version="2")
    del part["period"]
    part["status"] = "onhold"
    part["meta"]["tag"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]
    report = await run_pull(store, FakeServer([[part]]))
    assert (report.updated_cases, report.quarantined) == (0, 1)
    with store.session(read_only=True) as s:
        assert get_case(s, "case-1") == before
        [held] = list_quarantine(s)
        assert "SUBSETTED" in held.reason
        [entry] = list_ledger(s, BASE)
        assert entry.version_id == "1"  # the server's copy on record is still the whole one


async def test_a_resource_nested_past_what_the_store_writes_is_quarantined(store: Store) -> None:
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    nested = episode(2, "2024-05-01T10:00:00Z")
    nested["extension"] = [{"url": "http://example.org/x", "valueString": "y", "_deep": deep}]
    report = await run_pull(store, FakeServer([[episode(1, "2024-05-01T10:00:00Z"), nested]]))
    assert (report.new_cases, report.quarantined) == (1, 1)
    with store.session(read_only=True) as s:
        [held] = list_quarantine(s)
    assert "nested deeper" in held.reason and held.raw.count("[") > 300  # kept whole, for a person to see


async def test_an_identifier_that_is_no_list_is_not_ours_and_the_pull_goes_on(store: Store) -> None:
    odd = episode(2, "2024-05-01T10:00:00Z")
    odd["identifier"] = 5
    report = await run_pull(store, FakeServer([[episode(1, "2024-05-01T10:00:00Z"), odd]]))
    assert (report.fetched, report.new_cases) == (1, 1)


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


@pytest.mark.parametrize("bound", [{}, {"flush_size": 1}], ids=["in-memory", "spilled"])
async def test_a_closed_case_comes_in_whole_on_a_first_pull(store: Store, bound: dict[str, int]) -> None:
    """No open case of the patient places its Conditions, Goals and referrals: the CarePlan that names them does
    (``spilled``: from the scratch file, where what it names went with the buffer it was taken in with)."""
    from tests.mapping.builders import full_case

    case = full_case(
        status="closed",
        status_history=[
            {"status": "active", "start": "2024-01-02", "end": "2024-03-01"},
            {"status": "closed", "start": "2024-03-01"},
        ],
        period={"start": "2024-01-02", "end": "2024-03-01"},
    )
    resources = case_to_resources(case, "R4", SYSTEM)
    ids = {key: f"id-{n}" for n, key in enumerate(resources)}
    on_server = case_to_resources(case, "R4", SYSTEM, server_ids=ids)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for key, r in on_server.items():
        by_type.setdefault(key.type, []).append(
            {**r, "id": ids[key], "meta": {"versionId": "1", "lastUpdated": "2024-05-01T10:00:00Z"}}
        )

    report = await run_pull(store, CaseServer(by_type), **bound)

    assert (report.unplaced, report.quarantined, report.new_cases) == (0, 0, 1)
    with store.session(read_only=True) as s:
        (pulled,) = list_cases(s)
    assert pulled.model_dump() == case.model_dump()


class PagedServer:
    """Every case type from a dict of resources by type, ``per_page`` to a page with next links (the
    query is ignored). ``refuse`` = (type, page): that page answers 401, as a server whose token ran out."""

    def __init__(
        self, by_type: dict[str, list[dict[str, Any]]], per_page: int = 1, refuse: tuple[str, int] | None = None
    ) -> None:
        self.by_type, self.per_page, self.refuse = by_type, per_page, refuse

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(urlsplit(BASE).path).strip("/")
        if path == "metadata":
            return FakeServer([])(request)
        page = int(parse_qs(request.url.query.decode()).get("page", ["0"])[0])
        if self.refuse == (path, page):
            return httpx.Response(
                401,
                json={
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "login", "diagnostics": "token expired"}],
                },
            )
        items = self.by_type.get(path, [])
        chunk = items[page * self.per_page : (page + 1) * self.per_page]
        more = (page + 1) * self.per_page < len(items)
        return httpx.Response(200, json=bundle(chunk, f"{BASE}/{path}?page={page + 1}" if more else None))


def on_server(case: Case, version: str = "1", stamp: str = "2024-05-01T10:00:00Z") -> dict[str, list[dict[str, Any]]]:
    """The case's resources as a server holds them (ids and references of its own), by type."""
    resources = case_to_resources(case, "R4", SYSTEM)
    ids = {key: f"id-{key.type}-{key.value}" for key in resources}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for key, r in case_to_resources(case, "R4", SYSTEM, server_ids=ids).items():
        by_type.setdefault(key.type, []).append(
            {**r, "id": ids[key], "meta": {"versionId": version, "lastUpdated": stamp}}
        )
    return by_type


def revision(store: Store, case_id: str) -> int:
    with store.session(read_only=True) as s:
        record = get_case_record(s, case_id)
    assert record is not None
    return record.revision


def spy_on_spills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many resources each spill of the buffer to the scratch file moved."""
    moved: list[int] = []
    spill_buffer = _pull._Puller.spill_buffer

    def spy(self: _pull._Puller) -> None:
        moved.append(self.held)
        spill_buffer(self)

    monkeypatch.setattr(_pull._Puller, "spill_buffer", spy)
    return moved


async def test_a_case_spread_over_many_pages_is_merged_and_saved_once_whatever_the_flush_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One resource a page: every page of every type is held (the episode places the others, though
    its case is not stored yet) and the case is merged and saved once, at the end (a revision per
    save that changed it); with a flush size of 3, what is taken in beyond 3 resources goes to the
    scratch file, and the case is still merged and saved once, to the same end."""
    from tests.mapping.builders import full_case

    case = full_case()
    by_type = on_server(case)
    n = sum(len(v) for v in by_type.values())
    with open_store(f"sqlite:///{tmp_path / 'one.db'}") as store:
        report = await run_pull(store, PagedServer(by_type))
        assert (report.fetched, report.new_cases, report.quarantined, report.unplaced) == (n, 1, 0, 0)
        assert revision(store, case.id) == 1  # created once, with everything
        with store.session(read_only=True) as s:
            assert get_case(s, case.id) == case
            assert len(list_ledger(s, BASE, case_id=case.id)) == n
    with open_store(f"sqlite:///{tmp_path / 'small.db'}") as store:
        spills = spy_on_spills(monkeypatch)
        await run_pull(store, PagedServer(by_type), flush_size=3)
        assert len(spills) >= (n - 1) // 3 - 1  # the buffer went to the file again and again...
        assert revision(store, case.id) == 1  # ...and the case was merged once all the same
        with store.session(read_only=True) as s:
            assert get_case(s, case.id) == case


async def test_server_edits_on_several_pages_update_a_case_in_one_save(store: Store) -> None:
    from tests.mapping.builders import full_case

    case = full_case()
    await run_pull(store, PagedServer(on_server(case)))
    before = revision(store, case.id)
    edited = case.model_copy(
        update={
            "acuity": Acuity.INTENSIVE,
            "goals": [g.model_copy(update={"achievement": GoalAchievement.ACHIEVED}) for g in case.goals],
        }
    )
    changed = on_server(edited, version="2", stamp="2024-05-02T10:00:00Z")
    report = await run_pull(store, PagedServer(changed))
    assert len(changed["Goal"]) > 1 and report.updated_cases == 1
    assert revision(store, case.id) == before + 1
    with store.session(read_only=True) as s:
        assert get_case(s, case.id) == edited


async def test_a_server_failure_keeps_what_was_pulled_and_moves_only_finished_types_watermarks(
    store: Store,
) -> None:
    from fhir_cm.synthetic import generate_cases

    first, second = generate_cases(2, seed=7)
    by_type = on_server(first)
    for rtype, items in on_server(second).items():
        by_type.setdefault(rtype, []).extend(items)
    server = PagedServer(by_type, refuse=("CarePlan", 1))  # the second CarePlan page fails
    with pytest.raises(FhirError):
        await run_pull(store, server)
    with store.session(read_only=True) as s:
        assert get_watermark(s, BASE, "EpisodeOfCare") == "2024-05-01T10:00:00Z"
        assert get_watermark(s, BASE, "CarePlan") is None  # not finished: the next pull starts over
        assert sorted(c.id for c in list_cases(s)) == sorted([first.id, second.id])
        plans = {e.key for e in list_ledger(s, BASE) if e.resource_type == "CarePlan"}
    assert plans == {f"{first.id}-careplan"}  # the page that came is kept

    report = await run_pull(store, PagedServer(by_type))
    assert report.quarantined == report.unplaced == 0
    with store.session(read_only=True) as s:
        assert get_case(s, first.id) == first and get_case(s, second.id) == second


async def test_a_permanently_failed_push_protects_its_change_only_while_the_case_differs_from_the_server(
    store: Store,
) -> None:
    """The failed row's local change is still unpushed: a server edit of the same field is a conflict.
    Once the case holds the server's copy again, the failed row (still failed, still counted) makes
    no later server edit a conflict."""
    from tests.mapping.builders import full_case

    case = full_case()
    await run_pull(store, PagedServer(on_server(case)))
    with store.session() as s:
        save_case(s, case.model_copy(update={"acuity": Acuity.LOW}))
        [item] = claim_outbox(s, "w1")
        mark_push_failed(s, item, "HTTP 422", retry=False)

    server_edit = case.model_copy(update={"acuity": Acuity.INTENSIVE})
    first = await run_pull(store, PagedServer(on_server(server_edit, "2", "2024-05-02T10:00:00Z")))
    assert first.conflicts == 1
    with store.session(read_only=True) as s:
        assert get_case(s, case.id) == server_edit  # the server's value stands; the local one is in the conflict

    again = server_edit.model_copy(update={"acuity": Acuity.HIGH})
    second = await run_pull(store, PagedServer(on_server(again, "3", "2024-05-03T10:00:00Z")))
    assert (second.conflicts, second.updated_cases) == (0, 1)
    with store.session(read_only=True) as s:
        assert get_case(s, case.id) == again
        assert outbox_counts(s)[OutboxStatus.FAILED] == 1  # still there for people to see
