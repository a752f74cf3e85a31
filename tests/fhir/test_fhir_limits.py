"""Transactions a server refuses for their size or kind: learn the limit, split in dependency order."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from fhir_cm.fhir import AsyncFhirClient, BundleEntry, InvalidRequest, PayloadTooLarge, UnsupportedByServer
from fhir_cm.fhir._errors import RequestInfo, error_from_outcome
from fhir_cm.fhir._limits import limit_after_refusal, plan_parts

from .conftest import BASE

MEDPLUM = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "invalid",
            "details": {"text": "Transaction requires strict isolation but has too many entries"},
        }
    ],
}
HAPI_0528 = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "processing",
            "diagnostics": "HAPI-0528: Transaction Bundle Too large.  Transaction bundle contains 12 which exceedes "
            "the maximum permitted transaction bundle size of 5",
        }
    ],
}


def urn(n: int) -> str:
    return f"urn:uuid:00000000-0000-4000-8000-{n:012d}"


def case_like(goals: int) -> list[BundleEntry]:
    """A care plan pointing at ``goals`` goals and an episode, all conditional creates with urn:uuid
    links — one reference group, as a case's transaction is — plus a Provenance naming the plan."""
    entries = [
        BundleEntry.create(
            {"resourceType": "EpisodeOfCare", "status": "active"}, full_url=urn(0), if_none_exist="identifier=urn:x|e"
        ),
    ]
    for g in range(1, goals + 1):
        entries.append(
            BundleEntry.create(
                {"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": f"goal {g}"}},
                full_url=urn(g),
                if_none_exist=f"identifier=urn:x|g{g}",
            )
        )
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "supportingInfo": [{"reference": urn(0)}],
        "goal": [{"reference": urn(g)} for g in range(1, goals + 1)],
    }
    entries.insert(1, BundleEntry.create(plan, full_url=urn(99), if_none_exist="identifier=urn:x|cp"))
    entries.append(
        BundleEntry("PUT", "Provenance/p1", {"resourceType": "Provenance", "target": [{"reference": urn(99)}]})
    )
    return entries


class Server:
    """A respx handler playing a server with a transaction limit; it assigns ids ``<type-lower><n>``."""

    def __init__(self, refuse: dict[str, Any] | None, status: int = 400, limit: int = 8) -> None:
        self.refuse, self.status, self.limit = refuse, status, limit
        self.bundles: list[dict[str, Any]] = []
        self.refusals = 0
        self.next_id = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        self.bundles.append(bundle)
        if bundle["type"] == "transaction" and len(bundle["entry"]) > self.limit and self.refuse is not None:
            self.refusals += 1
            return httpx.Response(self.status, json=self.refuse)
        answers = []
        for entry in bundle["entry"]:
            rtype, _, rest = entry["request"]["url"].partition("/")
            rid = rest or f"{rtype.lower()}{self.next_id}"
            self.next_id += 1
            answers.append({"response": {"status": "201 Created", "location": f"{rtype}/{rid}/_history/1"}})
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": answers})


def references(bundle: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                found.add(node["reference"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk([e.get("resource") for e in bundle["entry"]])
    return found


async def test_medplums_refusal_teaches_8_and_parts_reference_earlier_parts_by_the_ids_given(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    server = Server(MEDPLUM)
    router.post(BASE).mock(side_effect=server)
    entries = case_like(goals=10)  # 13 entries, one reference group

    result = await client.transaction(entries)

    assert result.ok and result.mode == "split-transaction" and server.refusals == 1
    parts = server.bundles[1:]
    assert [len(p["entry"]) for p in parts] == [8, 5]
    assert all(p["type"] == "transaction" for p in parts)
    sent_urls = {e.get("fullUrl") for p in parts for e in p["entry"]}
    for n, part in enumerate(parts):
        own = {e.get("fullUrl") for e in part["entry"]}
        for ref in references(part):  # a urn:uuid only for an entry of the same part
            assert not ref.startswith("urn:uuid:") or ref in own, (n, ref)
    assert sent_urls >= {urn(0), urn(99)}
    # every entry stays conditional or versioned, so a re-run after a partial outcome is idempotent
    assert all(e["request"].get("ifNoneExist") or e["request"]["method"] == "PUT" for p in parts for e in p["entry"])
    plan = next(e["resource"] for p in parts for e in p["entry"] if e["resource"]["resourceType"] == "CarePlan")
    by_urn = {entries[i].full_url: f"{r.resource_type}/{r.id}" for i, r in enumerate(result.entries)}
    assert {g["reference"] for g in plan["goal"]} <= {by_urn[urn(g)] for g in range(1, 11)} | {
        urn(g) for g in range(1, 11)
    }
    assert client.transaction_limit == 8
    learnt = client.learnt_transaction_limit
    assert learnt is not None and learnt.lasting and "strict isolation" in learnt.reason

    server.bundles.clear()
    again = await client.transaction(case_like(goals=10))

    assert again.ok and server.refusals == 1  # sent in parts at once: not refused a second time
    assert max(len(b["entry"]) for b in server.bundles) <= 8


async def test_a_stated_limit_is_taken_from_hapis_message(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    server = Server(HAPI_0528, status=413, limit=5)
    router.post(BASE).mock(side_effect=server)

    result = await client.transaction(case_like(goals=9))

    assert result.ok and client.transaction_limit == 5
    assert [len(b["entry"]) for b in server.bundles] == [12, 5, 5, 2]
    assert client.learnt_transaction_limit is not None and client.learnt_transaction_limit.lasting


async def test_a_bare_413_halves_for_this_run_but_teaches_nothing_lasting(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    server = Server({}, status=413, limit=3)
    router.post(BASE).mock(side_effect=server)

    result = await client.transaction(case_like(goals=5))  # 8 entries: refused at 8 and at 4, then parts of 2

    assert result.ok and client.transaction_limit == 2
    assert client.learnt_transaction_limit is None
    assert [len(b["entry"]) for b in server.bundles] == [8, 4, 2, 2, 2, 2]


async def test_a_configured_limit_splits_without_asking_first(router: respx.MockRouter) -> None:
    server = Server(MEDPLUM)
    router.post(BASE).mock(side_effect=server)

    async with AsyncFhirClient(BASE, max_transaction_entries=8) as fhir:
        result = await fhir.transaction(case_like(goals=10))

    assert result.ok and server.refusals == 0
    assert [len(b["entry"]) for b in server.bundles] == [8, 5]


async def test_transactions_not_supported_are_remembered_as_none_at_all(router: respx.MockRouter) -> None:
    refused = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Transactions are not supported"}],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        if bundle["type"] == "transaction":
            return httpx.Response(400, json=refused)
        answers = [
            {"response": {"status": "201 Created", "location": f"Goal/g{i}"}} for i in range(len(bundle["entry"]))
        ]
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "batch-response", "entry": answers})

    bundles = router.post(BASE).mock(side_effect=handler)
    entries = [BundleEntry.create({"resourceType": "Goal"}, if_none_exist=f"identifier=a|{i}") for i in range(2)]

    async with AsyncFhirClient(BASE) as fhir:
        first = await fhir.transaction(entries)
        assert fhir.transaction_limit == 0
        second = await fhir.transaction(entries)

    assert first.ok and second.ok and first.mode == second.mode == "batch"
    assert [json.loads(c.request.content)["type"] for c in bundles.calls] == ["transaction", "batch", "batch"]
    assert fhir.learnt_transaction_limit is not None and fhir.learnt_transaction_limit.max_entries == 0


async def test_a_later_part_failing_is_reported_per_entry_and_what_follows_is_not_attempted(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    server = Server(MEDPLUM)
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        if calls[0] == 3:  # the second part
            return httpx.Response(
                422, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invariant"}]}
            )
        return server(request)

    router.post(BASE).mock(side_effect=handler)

    result = await client.transaction(case_like(goals=20))  # 23 entries: parts of 8, 8, 7

    assert calls[0] == 3 and not result.ok and result.mode == "split-transaction"
    statuses = [r.status for r in result.entries]
    assert statuses.count(201) == 8 and statuses.count(422) == 8 and statuses.count(None) == 7
    assert all(isinstance(r.error, InvalidRequest) for r in result.entries if r.status == 422)


async def test_the_first_part_failing_raises_because_nothing_was_applied(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    answers = iter([httpx.Response(400, json=MEDPLUM), httpx.Response(422, json={"resourceType": "OperationOutcome"})])
    router.post(BASE).mock(side_effect=lambda _: next(answers))

    with pytest.raises(InvalidRequest):
        await client.transaction(case_like(goals=10))


def test_medplums_400_is_a_size_refusal_only_for_a_bundle() -> None:
    bundle = error_from_outcome(400, MEDPLUM, RequestInfo("POST"))
    create = error_from_outcome(400, MEDPLUM, RequestInfo("POST", "Goal"))

    assert isinstance(bundle, PayloadTooLarge) and not isinstance(create, PayloadTooLarge)
    limit = limit_after_refusal(bundle, 30)
    assert limit is not None and (limit.max_entries, limit.lasting) == (8, True)
    assert limit_after_refusal(bundle, 5) is not None and limit_after_refusal(bundle, 5).max_entries == 4  # type: ignore[union-attr]
    assert limit_after_refusal(UnsupportedByServer("declared"), 5) is None  # the capability check, not the server


def test_parts_keep_groups_whole_and_follow_references() -> None:
    # 0 ← 1 ← 2 (2 references 1, 1 references 0); 3 alone; 4 ↔ 5 a cycle; 6 references 4
    deps = [set(), {0}, {1}, set(), {5}, {4}, {4}]

    assert plan_parts(deps, 3) == [[0, 1, 2], [3], [4, 5, 6]]
    assert plan_parts(deps, 7) == [[0, 1, 2, 3, 4, 5, 6]]
    parts = plan_parts(deps, 2)
    assert all(len(p) <= 2 for p in parts)
    position = {i: n for n, part in enumerate(parts) for i in part}
    assert all(position[j] <= position[i] for i, targets in enumerate(deps) for j in targets)
    assert plan_parts([{1}, {0}], 1) == [[0, 1]]  # a cycle cannot be cut: one part, over the limit
