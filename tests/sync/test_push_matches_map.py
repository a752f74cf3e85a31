"""The push sends what ``fhir-cm map`` shows: one entry rule (``mapping.plan_entry``) for both.

The transactions the push sends to a real server are captured on the wire and compared, entry by
entry, with ``case_to_bundle`` for a new case: conditional creates, or creates at stable ids for the
types the server does not search by identifier. (Updates depend on what only the server conversation
knows — the server's ids for the patient and parties — so the rule is pinned for them in
``tests/mapping/test_entries.py``.)
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import References, ResourceKey, case_to_bundle, case_to_resources
from fhir_cm.store import Store
from fhir_cm.sync import push_cases
from fhir_cm.synthetic import generate_cases

pytestmark = pytest.mark.server

Request = tuple[str, str, str | None, str | None]


def case_requests(bundle: dict[str, Any]) -> set[Request]:
    """(method, url, ifMatch, ifNoneExist) of each entry but the Provenance the push adds."""
    out: set[Request] = set()
    for entry in bundle.get("entry", []):
        if entry["resource"]["resourceType"] == "Provenance":
            continue
        req = entry["request"]
        out.add((req["method"], req["url"], req.get("ifMatch"), req.get("ifNoneExist")))
    return out


async def pushed_transactions(store: Store, fhir_server: str, settings: Settings, case: Case) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def capture(request: httpx.Request) -> None:
        if request.method == "POST" and request.content[:1] == b"{":
            body = orjson.loads(request.content)
            if body.get("resourceType") == "Bundle" and body.get("type") == "transaction":
                sent.append(body)

    async with httpx.AsyncClient(event_hooks={"request": [capture]}) as http:
        async with AsyncFhirClient(fhir_server, http=http) as client:
            report = await push_cases(store, client, settings, [case])
    assert report.failed == 0, report.failures
    return sent


async def stable_ids(fhir_server: str, case: Case, system: str) -> dict[ResourceKey, str]:
    """Where the server declares no ``identifier`` search for a type, its resources go to stable ids."""
    async with AsyncFhirClient(fhir_server) as client:
        caps = await client.capabilities()

    def searchable(rtype: str) -> bool:
        declared = caps.resource(rtype)
        return declared is not None and "identifier" in declared.search_params

    keys = case_to_resources(case, "R4", system)
    refs = References(system)
    return {k: refs.full_url(k).removeprefix("urn:uuid:") for k in keys if not searchable(k.type)}


async def test_a_new_case_is_pushed_as_map_shows_it(
    store: Store, fhir_server: str, settings: Settings, system: str
) -> None:
    [case] = generate_cases(1, seed=77)
    shown = case_requests(case_to_bundle(case, "R4", system, server_ids=await stable_ids(fhir_server, case, system)))

    [first, *_] = await pushed_transactions(store, fhir_server, settings, case)

    assert shown and {method for method, *_ in shown} <= {"POST", "PUT"}
    assert all((method == "POST") == bool(criteria) for method, _, _, criteria in shown)
    assert case_requests(first) == shown
