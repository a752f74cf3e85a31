"""Transactions and batches: per-entry results, and the safe way down on 413 / unsupported."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from fhir_cm.fhir import (
    AsyncFhirClient,
    BundleEntry,
    Capabilities,
    FhirError,
    InvalidResponse,
    PayloadTooLarge,
    RetryPolicy,
    UnsupportedByServer,
    VersionConflict,
)

from .conftest import BASE, Hapi, Sleeps

PATIENT_URN = "urn:uuid:0b6a1c2e-0000-4000-8000-000000000001"


def sent(call: Any) -> dict[str, Any]:
    return json.loads(call.request.content)  # type: ignore[no-any-return]


def answer(bundle: dict[str, Any], statuses: dict[str, int] | None = None) -> dict[str, Any]:
    """A transaction-/batch-response naming an id per entry (``n<index>``, or the id a PUT names)."""
    entries = []
    for i, entry in enumerate(bundle["entry"]):
        rtype, _, rid = entry["request"]["url"].split("?")[0].partition("/")
        status = (statuses or {}).get(str(i), 201)
        response: dict[str, Any] = {"status": f"{status} Status"}
        if status < 400:
            response |= {"location": f"{rtype}/{rid or f'n{i}'}/_history/1", "etag": 'W/"1"'}
        else:
            response["outcome"] = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "transient"}],
            }
        entries.append({"response": response})
    return {"resourceType": "Bundle", "type": f"{bundle['type']}-response", "entry": entries}


def linked_entries() -> list[BundleEntry]:
    """A patient and a care plan pointing at it by urn:uuid, plus an unrelated goal."""
    return [
        BundleEntry.create({"resourceType": "Patient", "identifier": [{"value": "p"}]}, full_url=PATIENT_URN),
        BundleEntry.create(
            {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": PATIENT_URN}}
        ),
        BundleEntry.create({"resourceType": "Goal", "lifecycleStatus": "active"}),
    ]


async def test_transaction_results_come_from_the_response_entries(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    route = router.post(BASE).mock(return_value=hapi.response("transaction-response-careplan"))
    entries = [
        BundleEntry.create(
            {"resourceType": "Goal", "lifecycleStatus": "active"}, if_none_exist={"identifier": "urn:x|g1"}
        ),
        BundleEntry.conditional_update({"resourceType": "CarePlan", "status": "active"}, {"identifier": "urn:x|cp1"}),
    ]

    result = await client.transaction(entries)

    body = sent(route.calls[0])
    assert body["type"] == "transaction"
    assert body["entry"][0]["request"] == {"method": "POST", "url": "Goal", "ifNoneExist": "identifier=urn:x|g1"}
    assert body["entry"][1]["request"] == {"method": "PUT", "url": "CarePlan?identifier=urn:x|cp1"}
    assert (result.mode, result.atomic, result.ok) == ("transaction", True, True)
    first, second = result.entries
    assert (first.status, first.created, first.resource_type, first.id, first.version_id) == (
        201,
        True,
        "Goal",
        "1924570",
        "1",
    )
    assert (second.status, second.id, second.version_id, second.etag) == (200, "1924561", "2", "2")
    assert second.outcome is not None  # HAPI's SUCCESSFUL_CONDITIONAL_UPDATE outcome


async def test_a_failing_transaction_raises_because_nothing_was_applied(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.post(BASE).mock(return_value=hapi.response("update-careplan-409-hapi-0989"))

    with pytest.raises(VersionConflict):
        await client.transaction(
            [BundleEntry.update({"resourceType": "CarePlan", "id": "1924561", "meta": {"versionId": "1"}})]
        )


@pytest.mark.parametrize(
    ("entries", "said"),
    [
        (["201 Created"], "transaction-response entry 1 is not an entry with a response"),
        ([{"response": "201 Created"}], "transaction-response entry 1 is not an entry with a response"),
        ({"response": {"status": "201"}}, "the transaction-response's entry is not an array"),
    ],
)
async def test_a_transaction_response_of_the_wrong_shape_is_an_invalid_response(
    client: AsyncFhirClient, router: respx.MockRouter, entries: Any, said: str
) -> None:
    # These failed with AttributeError ('str' object has no attribute 'get'): a built-in error out
    # of the client, which a push does not expect from a server's answer.
    router.post(BASE).respond(200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": entries})

    with pytest.raises(InvalidResponse) as caught:
        await client.transaction([BundleEntry.update({"resourceType": "Goal", "id": "g1"}, versioned=False)])

    assert str(caught.value) == said


async def test_an_entry_response_element_that_is_no_string_is_left_out(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    response = {"status": "200 OK", "location": 17, "etag": 3, "lastModified": {"at": "now"}}
    resource = {"resourceType": "Goal", "id": "g1", "meta": {"versionId": "4"}, "lifecycleStatus": "active"}
    body = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": response, "resource": resource}],
    }
    router.post(BASE).respond(200, json=body)

    result = await client.transaction([BundleEntry.update({"resourceType": "Goal", "id": "g1"}, versioned=False)])

    (entry,) = result.entries
    assert (entry.ok, entry.resource_type, entry.id, entry.version_id, entry.location) == (
        True,
        "Goal",
        "g1",
        "4",
        None,
    )


async def test_413_splits_a_transaction_along_its_references(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        if len(bundle["entry"]) > 2:
            return httpx.Response(413, text="<html>413 Request Entity Too Large</html>")
        return httpx.Response(200, json=answer(bundle))

    route = router.post(BASE).mock(side_effect=handler)

    result = await client.transaction(linked_entries())

    parts = [[e["request"]["url"] for e in sent(call)["entry"]] for call in route.calls[1:]]
    assert parts == [["Patient", "CarePlan"], ["Goal"]]  # the linked pair stays one atomic transaction
    assert all(sent(call)["type"] == "transaction" for call in route.calls)
    assert (result.mode, result.atomic, result.ok) == ("split-transaction", False, True)
    assert [e.resource_type for e in result.entries] == ["Patient", "CarePlan", "Goal"]


async def test_413_on_one_linked_group_sends_singles_with_references_rewritten(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.post(BASE).respond(413)
    patients = router.post(f"{BASE}/Patient").respond(
        201, headers={"Location": f"{BASE}/Patient/p9/_history/1"}, json={"resourceType": "Patient", "id": "p9"}
    )
    plans = router.post(f"{BASE}/CarePlan").respond(
        201, headers={"Location": f"{BASE}/CarePlan/c9/_history/1"}, json={"resourceType": "CarePlan", "id": "c9"}
    )
    entries = linked_entries()[:2][::-1]  # the care plan first: the patient must still be created first

    result = await client.transaction(entries)

    assert patients.calls[0] is router.calls[1] and plans.calls[0] is router.calls[2]
    assert sent(plans.calls[0])["subject"] == {"reference": "Patient/p9"}
    assert result.mode == "single" and [e.id for e in result.entries] == ["c9", "p9"]


async def test_singles_stop_at_the_first_failure_for_a_transaction(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.post(BASE).respond(413)
    router.post(f"{BASE}/Patient").respond(
        422, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invariant"}]}
    )
    plans = router.post(f"{BASE}/CarePlan").respond(201, json={"resourceType": "CarePlan", "id": "c"})

    result = await client.transaction(linked_entries()[:2])

    assert plans.call_count == 0
    assert [e.status for e in result.entries] == [422, None]
    assert not result.ok and result.entries[0].error is not None


async def test_no_transaction_support_falls_back_to_a_batch_when_entries_are_independent(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        if bundle["type"] == "transaction":
            return httpx.Response(
                405,
                json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]},
            )
        return httpx.Response(200, json=answer(bundle))

    route = router.post(BASE).mock(side_effect=handler)
    entries = [BundleEntry.create({"resourceType": "Goal"}), BundleEntry.create({"resourceType": "Task"})]

    result = await client.transaction(entries)

    assert [sent(call)["type"] for call in route.calls] == ["transaction", "batch"]
    assert result.mode == "batch" and result.ok


async def test_declared_lack_of_transaction_with_references_goes_straight_to_singles(router: respx.MockRouter) -> None:
    caps = Capabilities.from_statement(
        {
            "resourceType": "CapabilityStatement",
            "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "interaction": [{"code": "batch"}]}],
        }
    )
    router.post(f"{BASE}/Patient").respond(201, json={"resourceType": "Patient", "id": "p1"})
    plans = router.post(f"{BASE}/CarePlan").respond(201, json={"resourceType": "CarePlan", "id": "c1"})
    router.post(f"{BASE}/Goal").respond(201, json={"resourceType": "Goal", "id": "g1"})

    async with AsyncFhirClient(BASE, capabilities=caps) as fhir:
        result = await fhir.transaction(linked_entries())

    assert not any(call.request.url.path == "/baseR4" for call in router.calls)  # no bundle was sent
    assert sent(plans.calls[0])["subject"] == {"reference": "Patient/p1"}
    assert result.mode == "single" and result.ok


async def test_without_fallback_the_refusal_is_raised(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    router.post(BASE).respond(413)

    with pytest.raises(PayloadTooLarge):
        await client.transaction(linked_entries(), fallback=False)
    with pytest.raises(PayloadTooLarge):
        await client.batch(linked_entries(), fallback=False)


async def test_a_batch_is_halved_on_413_and_chunked_on_request(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        return httpx.Response(413) if len(bundle["entry"]) > 2 else httpx.Response(200, json=answer(bundle))

    route = router.post(BASE).mock(side_effect=handler)
    entries = [BundleEntry.create({"resourceType": "Task", "status": s}) for s in ("a", "b", "c", "d")]

    result = await client.batch(entries)
    assert [len(sent(call)["entry"]) for call in route.calls] == [4, 2, 2]
    assert result.mode == "batch" and result.ok and len(result.entries) == 4

    route.reset()
    await client.batch(entries, max_entries=1)
    assert [len(sent(call)["entry"]) for call in route.calls] == [1, 1, 1, 1]


async def test_batch_entries_failing_transiently_are_resent_only_when_safe(
    router: respx.MockRouter, sleeps: Sleeps
) -> None:
    calls: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        calls.append(bundle)
        first = len(calls) == 1
        return httpx.Response(200, json=answer(bundle, {"0": 503, "1": 503} if first else None))

    router.post(BASE).mock(side_effect=handler)
    entries = [
        BundleEntry.create({"resourceType": "Task"}),  # unconditional: must not be sent twice
        BundleEntry.create({"resourceType": "Task"}, if_none_exist="identifier=urn:x|t1"),
        BundleEntry.update({"resourceType": "Task", "id": "t2", "meta": {"versionId": "1"}}),
    ]
    async with AsyncFhirClient(BASE, retry=RetryPolicy(backoff_base=1.0, rng=lambda: 1.0), sleep=sleeps) as fhir:
        result = await fhir.batch(entries)

    assert [len(b["entry"]) for b in calls] == [3, 1]
    assert calls[1]["entry"][0]["request"]["ifNoneExist"] == "identifier=urn:x|t1"
    assert [e.status for e in result.entries] == [503, 201, 201]
    assert result.failed[0].error is not None and sleeps.calls == [1.0]


async def test_batch_unsupported_sends_entries_one_by_one(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    router.post(BASE).respond(501)
    singles = router.post(f"{BASE}/Task").respond(201, json={"resourceType": "Task", "id": "t"})

    result = await client.batch(
        [BundleEntry.create({"resourceType": "Task"}), BundleEntry.create({"resourceType": "Task"})]
    )

    assert singles.call_count == 2 and result.mode == "single"


def test_entries_know_when_they_are_safe_to_repeat() -> None:
    assert not BundleEntry.create({"resourceType": "Goal"}).safe_to_repeat
    assert BundleEntry.create({"resourceType": "Goal"}, if_none_exist="identifier=a|b").safe_to_repeat
    assert BundleEntry.update({"resourceType": "Goal", "id": "1", "meta": {"versionId": "2"}}).safe_to_repeat
    assert not BundleEntry.update({"resourceType": "Goal", "id": "1"}).safe_to_repeat
    assert BundleEntry.conditional_update({"resourceType": "Goal"}, "identifier=a|b").safe_to_repeat
    assert not BundleEntry.delete("Goal", "1").safe_to_repeat
    assert BundleEntry.from_fhir({"request": {"method": "GET", "url": "Goal/1"}}).safe_to_repeat


def test_a_reference_cycle_cannot_be_sent_one_by_one() -> None:
    from fhir_cm.fhir._bundles import _reference_order

    a = BundleEntry.create({"resourceType": "CarePlan", "partOf": [{"reference": "urn:uuid:b"}]}, full_url="urn:uuid:a")
    b = BundleEntry.create({"resourceType": "CarePlan", "partOf": [{"reference": "urn:uuid:a"}]}, full_url="urn:uuid:b")

    with pytest.raises(UnsupportedByServer, match="cycle"):
        _reference_order([a, b])


@pytest.mark.parametrize("kind", ["transaction", "batch"])
async def test_a_response_whose_entries_answer_other_requests_is_an_invalid_response(
    client: AsyncFhirClient, router: respx.MockRouter, kind: str
) -> None:
    # A server answering in the order it processed the entries (or dropping one and adding another)
    # had each result read as the answer to the entry at its place: the Goal's update was taken as
    # writing the Communication, and its copy recorded as the Goal's.
    def handler(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        entries = list(reversed(answer(bundle, {str(i): 200 for i in range(2)})["entry"]))
        entries[0]["response"]["location"] = "Communication/c1/_history/2"
        entries[1]["response"]["location"] = "Goal/g1/_history/2"
        return httpx.Response(200, json={"resourceType": "Bundle", "type": f"{kind}-response", "entry": entries})

    router.post(BASE).mock(side_effect=handler)
    entries = [
        BundleEntry.update({"resourceType": "Goal", "id": "g1"}, versioned=False),
        BundleEntry.update({"resourceType": "Communication", "id": "c1"}, versioned=False),
    ]

    with pytest.raises(InvalidResponse) as caught:
        await (client.transaction(entries) if kind == "transaction" else client.batch(entries))

    assert str(caught.value) == f"{kind}-response entry 1 answers Communication/c1 for PUT Goal/g1"


async def test_a_put_answered_under_another_id_is_an_invalid_response(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.post(BASE).respond(
        200,
        json={
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [{"response": {"status": "200 OK", "location": "Goal/g2/_history/1"}}],
        },
    )

    with pytest.raises(InvalidResponse, match="batch-response entry 1 answers Goal/g2 for PUT Goal/g1"):
        await client.batch([BundleEntry.update({"resourceType": "Goal", "id": "g1"}, versioned=False)])


def transaction_only() -> Capabilities:
    """A statement listing ``transaction`` and not ``batch``, as HAPI 8's does."""
    return Capabilities.from_statement(
        {
            "resourceType": "CapabilityStatement",
            "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "interaction": [{"code": "transaction"}]}],
        }
    )


async def test_a_server_listing_transactions_only_is_sent_a_batch(router: respx.MockRouter) -> None:
    route = router.post(BASE).mock(side_effect=lambda request: httpx.Response(200, json=answer(sent_bundle(request))))
    singles = router.post(f"{BASE}/Task").respond(201, json={"resourceType": "Task", "id": "t"})

    async with AsyncFhirClient(BASE, capabilities=transaction_only()) as fhir:
        result = await fhir.batch([BundleEntry.create({"resourceType": "Task"}) for _ in range(3)])
        with pytest.raises(UnsupportedByServer):  # without a way down, only what the server lists
            await fhir.batch([BundleEntry.create({"resourceType": "Task"})], fallback=False)

    assert result.mode == "batch" and result.ok
    assert [sent(call)["type"] for call in route.calls] == ["batch"] and singles.call_count == 0


async def test_a_batch_refused_by_a_server_listing_transactions_only_goes_singly_from_then_on(
    router: respx.MockRouter,
) -> None:
    refusal = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}
    route = router.post(BASE).respond(400, json=refusal)
    singles = router.post(f"{BASE}/Task").respond(201, json={"resourceType": "Task", "id": "t"})

    async with AsyncFhirClient(BASE, capabilities=transaction_only()) as fhir:
        first = await fhir.batch([BundleEntry.create({"resourceType": "Task"}) for _ in range(2)])
        second = await fhir.batch([BundleEntry.create({"resourceType": "Task"}) for _ in range(2)])

    assert first.mode == second.mode == "single" and first.ok and second.ok
    assert route.call_count == 1 and singles.call_count == 4  # the refusal is not asked for again


async def test_a_batch_refused_where_batches_are_listed_is_the_servers_error(router: respx.MockRouter) -> None:
    caps = Capabilities.from_statement(
        {
            "resourceType": "CapabilityStatement",
            "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "interaction": [{"code": "transaction"}, {"code": "batch"}]}],
        }
    )
    router.post(BASE).respond(
        400, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}
    )

    async with AsyncFhirClient(BASE, capabilities=caps) as fhir:
        with pytest.raises(FhirError) as raised:
            await fhir.batch([BundleEntry.create({"resourceType": "Task"})])

    assert raised.value.status == 400


def sent_bundle(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content)  # type: ignore[no-any-return]
