"""Searches: paging variants, origin refusal, page cap, streaming, includes, quarantine, gating."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
import respx

from fhir_cm.fhir import (
    AmbiguousMatch,
    AsyncFhirClient,
    InvalidResponse,
    PageLimitExceeded,
    Quarantined,
    ResourceNotFound,
    UnsafeLink,
    UnsupportedByServer,
)

from .conftest import BASE, Hapi, search_answer

GETPAGES = "3f2a7c1e-8b4d-4e9a-a1c2-5d6e7f809a1b"


def page_route(router: respx.MockRouter, offset: int, response: httpx.Response) -> respx.Route:
    """HAPI's root-level ``[base]?_getpages=…&_getpagesoffset=N`` page."""
    return router.get(BASE, params={"_getpages": GETPAGES, "_getpagesoffset": str(offset)}).mock(return_value=response)


def mock_three_pages(router: respx.MockRouter, hapi: Hapi) -> list[respx.Route]:
    first = router.get(f"{BASE}/CarePlan", params={"patient": "Patient/592080", "_count": "2"}).mock(
        return_value=hapi.response("search-careplan-getpages-page1")
    )
    return [
        first,
        page_route(router, 2, hapi.response("search-careplan-getpages-page2")),
        page_route(router, 4, hapi.response("search-careplan-getpages-page3")),
    ]


async def test_follows_hapi_getpages_links_across_three_pages(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    routes = mock_three_pages(router, hapi)

    ids = [cp["id"] async for cp in client.search("CarePlan", patient="Patient/592080").count(2)]

    assert ids == ["1924561", "1924562", "1924563", "1924564", "1924565"]
    assert [r.call_count for r in routes] == [1, 1, 1]
    # followed verbatim: HAPI's own extra parameters (_pretty, _bundletype) are sent back untouched
    assert routes[1].calls[0].request.url.params["_bundletype"] == "searchset"


async def test_pages_are_fetched_one_at_a_time(client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi) -> None:
    routes = mock_three_pages(router, hapi)
    pages = client.search("CarePlan", patient="Patient/592080").count(2).pages()

    first = await anext(pages)
    assert [r.call_count for r in routes] == [1, 0, 0]
    second = await anext(pages)
    assert [r.call_count for r in routes] == [1, 1, 0]
    await pages.aclose()

    assert (first.number, len(first.matches), first.total) == (1, 2, None)  # HAPI left total out
    assert second.next_url is not None and "_getpagesoffset=4" in second.next_url


async def test_follows_a_host_relative_next_link(client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi) -> None:
    router.get(f"{BASE}/CarePlan").mock(return_value=hapi.response("search-careplan-host-relative-next"))
    second = page_route(router, 2, hapi.response("search-careplan-getpages-page3"))

    results = await client.search("CarePlan").fetch_all()

    assert len(results) == 3 and second.call_count == 1


async def test_resolves_a_relative_path_next_link_below_the_base(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    second = router.get(f"{BASE}/Task", params={"_offset": "1"}).respond(
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": {"resourceType": "Task", "id": "b"}}],
        }
    )
    router.get(f"{BASE}/Task").respond(
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [{"relation": "next", "url": "Task?_offset=1"}],
            "entry": [{"resource": {"resourceType": "Task", "id": "a"}}],
        }
    )

    assert [t["id"] async for t in client.search("Task")] == ["a", "b"]
    assert second.call_count == 1


async def test_refuses_a_next_link_to_another_origin(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.get(f"{BASE}/CarePlan").mock(return_value=hapi.response("search-careplan-foreign-next"))
    seen: list[str] = []

    with pytest.raises(UnsafeLink):
        async for cp in client.search("CarePlan"):
            seen.append(cp["id"])

    assert seen == ["1924561", "1924562"]  # the first page was delivered; nothing was sent elsewhere
    assert len(router.calls) == 1


@pytest.mark.parametrize(
    "link",
    [
        "http://hapi.fhir.org/baseR4?_getpages=x",
        "https://hapi.fhir.org:8443/baseR4?_getpages=x",
        "//evil.example/fhir?p=2",
    ],
)
async def test_a_different_scheme_port_or_host_is_another_origin(
    client: AsyncFhirClient, router: respx.MockRouter, link: str
) -> None:
    router.get(f"{BASE}/Goal").respond(
        json={"resourceType": "Bundle", "type": "searchset", "link": [{"relation": "next", "url": link}]}
    )

    with pytest.raises(UnsafeLink):
        await client.search("Goal").fetch_all()


async def test_prefetch_asks_for_the_next_page_while_the_caller_works_on_this_one(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    routes = mock_three_pages(router, hapi)
    asked = asyncio.Event()
    second_page = hapi.response("search-careplan-getpages-page2")
    routes[1].side_effect = lambda request: (asked.set(), second_page)[1]
    pages = client.search("CarePlan", patient="Patient/592080").count(2).prefetch().pages()

    first = await anext(pages)
    assert routes[1].call_count == 0
    await asyncio.wait_for(asked.wait(), 10)  # the caller "works" (awaits): the next page is asked for meanwhile
    assert [r.call_count for r in routes] == [1, 1, 0]
    second = await anext(pages)
    third = await anext(pages)
    assert [r.call_count for r in routes] == [1, 1, 1]  # nothing asked for past the last page
    with pytest.raises(StopAsyncIteration):
        await anext(pages)

    plain = [p async for p in client.search("CarePlan", patient="Patient/592080").count(2).pages()]
    assert [[r["id"] for r in p.matches] for p in (first, second, third)] == [
        [r["id"] for r in p.matches] for p in plain
    ]


async def test_prefetch_stopped_early_cancels_the_page_asked_for_and_keeps_the_page_cap(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    routes = mock_three_pages(router, hapi)
    pages = client.search("CarePlan", patient="Patient/592080").count(2).prefetch().pages()
    await anext(pages)
    ahead = [t for t in asyncio.all_tasks() if "get_bundle" in repr(t.get_coro())]
    assert len(ahead) == 1  # the next page, asked for

    await pages.aclose()

    [outcome] = await asyncio.gather(*ahead, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError)  # dropped, not left running
    assert [r.call_count for r in routes] == [1, 0, 0]

    seen: list[str] = []
    with pytest.raises(PageLimitExceeded):
        async for cp in client.search("CarePlan", patient="Patient/592080").count(2).limit_pages(2).prefetch():
            seen.append(cp["id"])
    assert len(seen) == 4
    assert routes[2].call_count == 0  # the cap is not passed to prefetch


async def test_page_cap_stops_after_delivering_the_allowed_pages(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    routes = mock_three_pages(router, hapi)
    seen: list[str] = []

    with pytest.raises(PageLimitExceeded):
        async for cp in client.search("CarePlan", patient="Patient/592080").count(2).limit_pages(2):
            seen.append(cp["id"])

    assert len(seen) == 4
    assert routes[2].call_count == 0


def offset_pages(router: respx.MockRouter, total: int | None, matches: int) -> respx.Route:
    """Pages of ``matches`` episodes each, stating ``total``, with a next link (a new offset) until the
    total is reached — for ever when there is none or a page brings nothing."""

    def page(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        entry = [{"resource": {**EPISODE, "id": str(offset + n)}} for n in range(matches)]
        more = total is None or matches == 0 or offset + matches < total  # the last page links no further
        link = [{"relation": "next", "url": f"{BASE}/EpisodeOfCare?offset={offset + max(matches, 1)}"}] if more else []
        return httpx.Response(200, json=searchset(entry=entry, link=link, **({"total": total} if total else {})))

    return router.get(f"{BASE}/EpisodeOfCare").mock(side_effect=page)


async def test_until_total_reads_past_the_page_cap_to_the_count_the_server_stated(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    offset_pages(router, total=8, matches=2)

    ids = [r["id"] async for r in client.search("EpisodeOfCare").limit_pages(2).until_total()]

    assert ids == [str(n) for n in range(8)]  # four pages of two: the server's last one links no further
    with pytest.raises(PageLimitExceeded):  # without it the cap holds, as before
        _ = [r async for r in client.search("EpisodeOfCare").limit_pages(2)]


@pytest.mark.parametrize(("total", "matches"), [(None, 2), (50, 0)], ids=["no total", "pages bring nothing"])
async def test_until_total_keeps_the_cap_for_a_server_that_gives_no_reason_to_go_on(
    client: AsyncFhirClient, router: respx.MockRouter, total: int | None, matches: int
) -> None:
    route = offset_pages(router, total=total, matches=matches)

    with pytest.raises(PageLimitExceeded):
        _ = [r async for r in client.search("EpisodeOfCare").limit_pages(3).until_total().prefetch()]

    assert route.call_count == 3


async def test_a_server_that_repeats_its_next_link_is_not_followed_forever(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    loop = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": f"{BASE}/Task?page=2"}],
        "entry": [{"resource": {"resourceType": "Task", "id": "same"}}],
    }
    router.get(f"{BASE}/Task").respond(json=loop)

    with pytest.raises(UnsafeLink):
        await client.search("Task").fetch_all()

    assert len(router.calls) == 2  # first page and page 2; page 2's repeated link is refused unsent


async def test_revinclude_keeps_matches_and_included_apart(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    route = router.get(f"{BASE}/CarePlan").mock(return_value=hapi.response("search-careplan-revinclude-provenance"))

    pages = [
        p async for p in client.search("CarePlan", patient="Patient/592080").revinclude("Provenance:target").pages()
    ]

    assert [r["resourceType"] for r in pages[0].matches] == ["CarePlan"]
    assert [r["resourceType"] for r in pages[0].included] == ["Provenance"]
    assert route.calls[0].request.url.params["_revinclude"] == "Provenance:target"


async def test_invalid_entries_are_quarantined_and_the_page_goes_on(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.get(f"{BASE}/metadata").mock(return_value=hapi.response("metadata-r4"))
    router.get(f"{BASE}/EpisodeOfCare").mock(return_value=hapi.response("search-episodeofcare-invalid-entry"))
    quarantined: list[Quarantined] = []

    results = [r async for r in client.search("EpisodeOfCare").validated(on_quarantine=quarantined.append)]

    assert [type(r).__module__ for r in results] == ["fhir.resources.R4B.episodeofcare"]
    assert [r.id for r in results] == ["6991538"]
    assert [(q.resource_type, q.id) for q in quarantined] == [("EpisodeOfCare", "7002248")]
    assert quarantined[0].reason.startswith("diagnosis.0.condition: Field required")
    assert "Chief complaint" not in quarantined[0].reason  # the offending data is not echoed


async def test_an_entry_of_a_type_the_release_does_not_have_is_quarantined(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.get(f"{BASE}/metadata").mock(return_value=hapi.response("metadata-r4"))
    episode = {"resourceType": "EpisodeOfCare", "id": "1", "status": "active", "patient": {"reference": "Patient/1"}}
    stranger = {"resourceType": "Transport", "id": "2", "status": "completed"}  # an R5 type, from an R4 server
    router.get(f"{BASE}/EpisodeOfCare").mock(return_value=search_answer(episode, stranger))
    quarantined: list[Quarantined] = []

    results = [r async for r in client.search("EpisodeOfCare").validated(on_quarantine=quarantined.append)]

    assert [r.id for r in results] == ["1"]
    assert [(q.resource_type, q.id, q.reason) for q in quarantined] == [
        ("Transport", "2", "Transport is not a R4 resource type")
    ]


async def test_plain_dicts_by_default_even_for_invalid_resources(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.get(f"{BASE}/EpisodeOfCare").mock(return_value=hapi.response("search-episodeofcare-invalid-entry"))

    results = await client.search("EpisodeOfCare").fetch_all()

    assert [r["id"] for r in results] == ["7002248", "6991538"]
    assert all(isinstance(r, dict) for r in results)


async def test_outcome_entries_are_reported_not_yielded(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Goal").respond(
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {"resource": {"resourceType": "Goal", "id": "g"}, "search": {"mode": "match"}},
                {
                    "resource": {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "warning", "code": "not-supported"}],
                    },
                    "search": {"mode": "outcome"},
                },
            ],
        }
    )

    page = await anext(client.search("Goal", patient="Patient/1").pages())

    assert [r["id"] for r in page.resources] == ["g"]
    assert page.issues == [{"severity": "warning", "code": "not-supported"}]


async def test_undeclared_search_params_are_refused_once_capabilities_are_known(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.get(f"{BASE}/metadata").mock(return_value=hapi.response("metadata-r4"))
    search = router.get(f"{BASE}/CarePlan").mock(return_value=hapi.response("search-careplan-getpages-page3"))
    await client.capabilities()

    with pytest.raises(UnsupportedByServer, match="careteam"):
        await client.search("CarePlan", careteam="CareTeam/1").fetch_all()
    assert search.call_count == 0

    # declared names pass, with modifiers and chains judged by their base name
    query = client.search("CarePlan", care_team="CareTeam/1", category__not="x").where("subject:Patient.name", "a")
    await query.sort("-_lastUpdated").total().fetch_all()
    assert search.call_count == 1


async def test_search_without_capabilities_sends_and_maps_hapis_400(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    route = router.get(f"{BASE}/CarePlan").mock(return_value=hapi.response("search-careplan-400-unknown-param"))

    with pytest.raises(Exception, match="HAPI-0524"):
        await client.search("CarePlan", careteam="CareTeam/1").fetch_all()
    assert route.call_count == 1


async def test_query_building(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    route = router.get(f"{BASE}/Goal").respond(json={"resourceType": "Bundle", "type": "searchset"})
    since = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    await (
        client.search("Goal", lifecycle_status=["active", "on-hold"], patient="Patient/1")
        .last_updated(gt=since)
        .include("Goal:patient")
        .count(50)
        .count(25)
        .fetch_all()
    )

    params = route.calls[0].request.url.params
    assert params.get_list("lifecycle-status") == ["active,on-hold"]
    assert params["_lastUpdated"] == "gt2025-03-01T08:00:00+00:00"
    assert params["_include"] == "Goal:patient"
    assert params.get_list("_count") == ["25"]


def test_a_naive_datetime_is_refused(client: AsyncFhirClient) -> None:
    with pytest.raises(ValueError, match="timezone"):
        client.search("Task").last_updated(gt=datetime(2025, 3, 1))


async def test_first_and_get(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    def bundle(*ids: str) -> dict[str, object]:
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(ids),
            "entry": [{"resource": {"resourceType": "Patient", "id": i}} for i in ids],
        }

    router.get(f"{BASE}/Patient", params={"identifier": "one"}).respond(json=bundle("p1"))
    router.get(f"{BASE}/Patient", params={"identifier": "two"}).respond(json=bundle("p1", "p2"))
    router.get(f"{BASE}/Patient", params={"identifier": "none"}).respond(json=bundle())

    assert (await client.search("Patient", identifier="one").get())["id"] == "p1"
    assert (await client.search("Patient", identifier="two").first())["id"] == "p1"  # type: ignore[index]
    assert await client.search("Patient", identifier="none").first() is None
    with pytest.raises(AmbiguousMatch):
        await client.search("Patient", identifier="two").get()
    with pytest.raises(ResourceNotFound):
        await client.search("Patient", identifier="none").get()


async def test_history_pages_through_entries_including_deletes(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.get(f"{BASE}/CarePlan/1/_history", params={"_count": "2"}).respond(
        json={
            "resourceType": "Bundle",
            "type": "history",
            "link": [{"relation": "next", "url": f"{BASE}?_getpages=h1&_getpagesoffset=2"}],
            "entry": [
                {"request": {"method": "DELETE", "url": "CarePlan/1"}, "response": {"status": "204 No Content"}},
                {"resource": {"resourceType": "CarePlan", "id": "1", "meta": {"versionId": "2"}}},
            ],
        }
    )
    router.get(BASE, params={"_getpages": "h1"}).respond(
        json={
            "resourceType": "Bundle",
            "type": "history",
            "entry": [{"resource": {"resourceType": "CarePlan", "id": "1", "meta": {"versionId": "1"}}}],
        }
    )

    entries = [e async for e in client.history("CarePlan", "1", count=2)]

    assert [e.get("request", {}).get("method") for e in entries] == ["DELETE", None, None]
    assert [e["resource"]["meta"]["versionId"] for e in entries[1:]] == ["2", "1"]


# --- Bundles and answers of shapes no server should send: an error of the client's, never a crash ---

EPISODE = {"resourceType": "EpisodeOfCare", "id": "1", "status": "active", "patient": {"reference": "Patient/1"}}


def searchset(**fields: object) -> dict[str, object]:
    return {"resourceType": "Bundle", "type": "searchset", **fields}


@pytest.mark.parametrize(
    ("bundle", "error"),
    [
        (searchset(entry=5), InvalidResponse),
        (searchset(entry=[{"resource": EPISODE}], link=5), InvalidResponse),
        (searchset(entry=[{"resource": EPISODE}], link=[{"relation": "next", "url": 5}]), InvalidResponse),
        (searchset(entry=[{"resource": EPISODE}], link=[{"relation": "next", "url": "http://[::1/x"}]), UnsafeLink),
    ],
)
async def test_a_bundle_of_the_wrong_shape_is_an_error_of_the_client(
    client: AsyncFhirClient, router: respx.MockRouter, bundle: dict[str, object], error: type[Exception]
) -> None:
    router.get(f"{BASE}/EpisodeOfCare").mock(return_value=httpx.Response(200, json=bundle))
    with pytest.raises(error):
        await client.search("EpisodeOfCare").fetch_all()


async def test_odd_entry_details_are_read_past(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": 5}
    entries = [{"resource": EPISODE, "search": "match"}, {"resource": outcome, "search": {"mode": "outcome"}}]
    router.get(f"{BASE}/EpisodeOfCare").mock(return_value=httpx.Response(200, json=searchset(entry=entries)))
    assert [r["id"] for r in await client.search("EpisodeOfCare").fetch_all()] == ["1"]


async def test_a_page_read_ahead_is_still_given_when_its_next_link_is_refused(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    # Behind a proxy, HAPI may name its own internal address in the last page's next link.
    first = searchset(entry=[{"resource": EPISODE}], link=[{"relation": "next", "url": f"{BASE}/EpisodeOfCare?page=2"}])
    second = searchset(
        entry=[{"resource": {**EPISODE, "id": "2"}}],
        link=[{"relation": "next", "url": "http://internal-hapi:8080/fhir/EpisodeOfCare?page=3"}],
    )
    router.get(f"{BASE}/EpisodeOfCare", params={"page": "2"}).mock(return_value=httpx.Response(200, json=second))
    router.get(f"{BASE}/EpisodeOfCare").mock(return_value=httpx.Response(200, json=first))
    seen: list[str] = []
    with pytest.raises(UnsafeLink):
        async for page in client.search("EpisodeOfCare").prefetch().pages():
            seen += [r["id"] for r in page.matches]
    assert seen == ["1", "2"]


async def test_a_body_that_does_not_decode_as_declared_is_an_invalid_response(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    body = httpx.ByteStream(b'{"resourceType": "Patient", "id": "1"}')  # not gzipped: decoded only when read
    plain = httpx.Response(200, stream=body, headers={"Content-Encoding": "gzip"})
    router.get(f"{BASE}/Patient/1").mock(return_value=plain)
    with pytest.raises(InvalidResponse, match="Content-Encoding"):
        await client.read("Patient", "1")


async def test_a_read_answered_with_another_type_is_an_invalid_response(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational"}]}
    router.get(f"{BASE}/Patient/1").mock(return_value=httpx.Response(200, json=outcome))
    with pytest.raises(InvalidResponse, match="returned a OperationOutcome"):
        await client.read("Patient", "1")
