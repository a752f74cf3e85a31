"""Retries: only what is safe to repeat, Retry-After honoured, bounded."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
import respx

from fhir_cm.fhir import AsyncFhirClient, BundleEntry, RetryPolicy, TransientError
from fhir_cm.fhir._retry import http_date, parse_retry_after

from .conftest import BASE, Hapi, Sleeps

CAREPLAN = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/1"}}


def busy() -> httpx.Response:
    return httpx.Response(
        503, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]}
    )


def created(rid: str = "1924567") -> httpx.Response:
    return httpx.Response(201, headers={"Location": f"{BASE}/CarePlan/{rid}/_history/1"}, json={**CAREPLAN, "id": rid})


async def test_a_read_is_retried_after_503_with_exponential_backoff(
    client: AsyncFhirClient, router: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = router.get(f"{BASE}/CarePlan/1").mock(side_effect=[busy(), busy(), httpx.Response(200, json=CAREPLAN)])

    assert (await client.read("CarePlan", "1"))["resourceType"] == "CarePlan"

    assert route.call_count == 3
    assert sleeps.calls == [1.0, 2.0]


async def test_429_retry_after_seconds_is_honoured(
    client: AsyncFhirClient, router: respx.MockRouter, sleeps: Sleeps, hapi: Hapi
) -> None:
    page = hapi.response("search-careplan-getpages-page3")
    router.get(f"{BASE}/CarePlan").mock(side_effect=[hapi.response("search-429-throttled"), page])

    results = await client.search("CarePlan").fetch_all()

    assert len(results) == 1
    assert sleeps.calls == [2.0]  # the server's Retry-After: 2, not the 1 s back-off


async def test_retry_after_beyond_the_time_budget_gives_up_at_once(
    router: respx.MockRouter, sleeps: Sleeps, hapi: Hapi
) -> None:
    route = router.get(f"{BASE}/CarePlan").mock(
        return_value=hapi.response("search-429-throttled", **{"Retry-After": "120"})
    )

    async with AsyncFhirClient(BASE, retry=RetryPolicy(max_wait=30.0), sleep=sleeps) as fhir:
        with pytest.raises(TransientError) as caught:
            await fhir.search("CarePlan").fetch_all()

    assert route.call_count == 1 and sleeps.calls == []
    assert caught.value.status == 429 and caught.value.retry_after == 120.0


async def test_attempts_are_bounded(client: AsyncFhirClient, router: respx.MockRouter, sleeps: Sleeps) -> None:
    route = router.get(f"{BASE}/CarePlan/1").mock(return_value=busy())

    with pytest.raises(TransientError):
        await client.read("CarePlan", "1")

    assert route.call_count == 3  # max_attempts of the fixture's policy
    assert len(sleeps.calls) == 2


async def test_an_unconditional_post_is_never_retried(
    client: AsyncFhirClient, router: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = router.post(f"{BASE}/CarePlan").mock(side_effect=[busy(), created()])

    with pytest.raises(TransientError):
        await client.create(CAREPLAN)

    assert route.call_count == 1 and sleeps.calls == []


async def test_a_conditional_create_is_retried(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    route = router.post(f"{BASE}/CarePlan").mock(side_effect=[busy(), created()])

    result = await client.create(CAREPLAN, if_none_exist="identifier=urn:fhir-cm:id|cp-9")

    assert route.call_count == 2 and result.id == "1924567"
    assert all(call.request.headers["If-None-Exist"] == "identifier=urn:fhir-cm:id|cp-9" for call in route.calls)


async def test_a_versioned_update_is_retried_but_a_blind_one_is_not(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    ok = httpx.Response(200, json={**CAREPLAN, "id": "7", "meta": {"versionId": "3"}})
    route = router.put(f"{BASE}/CarePlan/7").mock(side_effect=[busy(), ok, busy(), ok])

    await client.update({**CAREPLAN, "id": "7", "meta": {"versionId": "2"}})
    assert route.call_count == 2

    with pytest.raises(TransientError):
        await client.update({**CAREPLAN, "id": "7"})  # no version known: no If-Match
    assert route.call_count == 3


async def test_a_conditional_update_is_retried(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    route = router.put(f"{BASE}/CarePlan").mock(side_effect=[busy(), created("8")])

    result = await client.conditional_update(CAREPLAN, {"identifier": "urn:fhir-cm:id|cp-8"})

    assert route.call_count == 2 and result.created


async def test_a_connection_never_made_is_retried_even_for_a_plain_post(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{BASE}/CarePlan").mock(side_effect=[httpx.ConnectError("refused"), created()])

    result = await client.create(CAREPLAN)

    assert route.call_count == 2 and result.id == "1924567"


async def test_a_read_timeout_on_a_plain_post_is_not_retried(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    route = router.post(f"{BASE}/CarePlan").mock(side_effect=[httpx.ReadTimeout("slow"), created()])

    with pytest.raises(TransientError):
        await client.create(CAREPLAN)

    assert route.call_count == 1


async def test_a_transaction_is_retried_only_when_every_entry_is_conditional_or_versioned(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    route = router.post(BASE).mock(side_effect=[busy(), hapi.response("transaction-response-careplan")])
    safe = [
        BundleEntry.create({"resourceType": "Goal", "lifecycleStatus": "active"}, if_none_exist="identifier=urn:x|g1"),
        BundleEntry.conditional_update({**CAREPLAN}, {"identifier": "urn:x|cp1"}),
    ]
    result = await client.transaction(safe)
    assert route.call_count == 2 and result.ok

    route.reset()
    route.side_effect = [busy(), hapi.response("transaction-response-careplan")]
    unsafe = [BundleEntry.create({"resourceType": "Goal", "lifecycleStatus": "active"}), safe[1]]
    with pytest.raises(TransientError):
        await client.transaction(unsafe)
    assert route.call_count == 1


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2025, 3, 14, 9, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Fri, 14 Mar 2025 09:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Fri, 14 Mar 2025 08:59:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("²") is None and parse_retry_after("٣") is None  # digits, not ASCII ones
    assert parse_retry_after(None) is None


def test_backoff_is_capped_and_jittered_within_half_to_full() -> None:
    low, high = (
        RetryPolicy(backoff_base=1.0, backoff_max=8.0, rng=lambda: 0.0),
        RetryPolicy(backoff_base=1.0, backoff_max=8.0, rng=lambda: 1.0),
    )
    assert [high.backoff(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert [low.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def throttled(retry_after: str = "3") -> httpx.Response:
    return httpx.Response(
        429,
        headers={"Retry-After": retry_after},
        json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "throttled"}]},
    )


async def test_a_plain_post_answered_429_is_sent_again_after_retry_after(
    client: AsyncFhirClient, router: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = router.post(f"{BASE}/CarePlan").mock(side_effect=[throttled(), created()])

    result = await client.create(CAREPLAN)  # no If-None-Exist: only a 429 makes repeating it safe

    assert route.call_count == 2 and result.id == "1924567" and result.created
    assert sleeps.calls == [3.0]


async def test_a_plain_post_answered_503_is_still_not_repeated(
    client: AsyncFhirClient, router: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = router.post(f"{BASE}/CarePlan").mock(side_effect=[busy(), created()])

    with pytest.raises(TransientError) as caught:
        await client.create(CAREPLAN)

    assert route.call_count == 1 and sleeps.calls == [] and caught.value.status == 503


async def test_a_transaction_of_plain_creates_answered_429_is_sent_again(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi, sleeps: Sleeps
) -> None:
    route = router.post(BASE).mock(side_effect=[throttled("1"), hapi.response("transaction-response-careplan")])
    unsafe = [
        BundleEntry.create({"resourceType": "Goal", "lifecycleStatus": "active"}),
        BundleEntry.conditional_update({**CAREPLAN}, {"identifier": "urn:x|cp1"}),
    ]

    result = await client.transaction(unsafe)

    assert route.call_count == 2 and result.ok and sleeps.calls == [1.0]


async def test_batch_entries_refused_with_429_are_resent_even_when_unconditional(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    def entry(status: str, location: str | None = None) -> dict[str, object]:
        response: dict[str, object] = {"status": status}
        if location:
            response["location"] = location
        return {"response": response}

    first = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [entry("201 Created", "Goal/g1"), entry("429 Too Many Requests"), entry("503 Unavailable")],
    }
    second = {"resourceType": "Bundle", "type": "batch-response", "entry": [entry("201 Created", "Goal/g2")]}
    route = router.post(BASE).mock(side_effect=[httpx.Response(200, json=first), httpx.Response(200, json=second)])
    goals = [BundleEntry.create({"resourceType": "Goal", "lifecycleStatus": "active"}) for _ in range(3)]

    result = await client.batch(goals)

    resent = json.loads(route.calls[1].request.content)["entry"]
    assert len(resent) == 1  # the 429 entry, not the 503 one: that one may have been applied
    assert [r.status for r in result.entries] == [201, 201, 503]


def test_an_answers_date_reads_as_an_instant_in_utc_and_a_bad_one_as_none() -> None:
    assert http_date("Sun, 06 Dec 2026 04:00:31 GMT") == "2026-12-06T04:00:31+00:00"
    assert http_date("Sun, 06 Dec 2026 05:00:31 +0100") == "2026-12-06T04:00:31+00:00"
    for bad in (None, "", "yesterday", "Sun, 99 Dec 2026 04:00:31 GMT"):
        assert http_date(bad) is None
