"""The HAPI-shaped fixtures (``fixtures/hapi/``) checked against a real HAPI FHIR JPA server.

The respx tests in ``tests/fhir`` run on hand-written HAPI answers. Each test here provokes the same
situation on the real server and checks that what the fixture claims — status, issue code, HAPI
message code, paging link shape — is what HAPI answers, and that the client reads both alike.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_cm.fhir import AmbiguousMatch, AsyncFhirClient, InvalidRequest, ResourceNotFound, VersionConflict
from tests.servers import RunningServer

pytestmark = pytest.mark.server

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hapi"
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def fixture(name: str) -> tuple[int, dict[str, Any]]:
    meta = json.loads((FIXTURES / "responses.json").read_text())[name]
    return meta["status"], json.loads((FIXTURES / meta["body"]).read_text())


def message_codes(outcome: dict[str, Any]) -> list[str]:
    return sorted(set(re.findall(r"HAPI-\d{4}", json.dumps(outcome.get("issue")))))


def shape(outcome: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    """What the client reads of an OperationOutcome: type, issue codes, HAPI message codes."""
    return outcome["resourceType"], [i["code"] for i in outcome["issue"]], message_codes(outcome)


@pytest.fixture
def base(hapi_r4: RunningServer) -> str:
    return hapi_r4.base_url


@pytest.fixture
async def client(base: str) -> AsyncIterator[AsyncFhirClient]:
    async with AsyncFhirClient(base) as fhir:
        yield fhir


def care_plan(identifier: str) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "identifier": [{"system": "urn:fhir-cm:canary", "value": identifier}],
        "subject": {"display": "nobody in particular"},
    }


async def test_read_of_an_unknown_resource_is_404_hapi_2001(base: str, client: AsyncFhirClient) -> None:
    status, body = fixture("read-careplan-404-hapi-2001")
    answer = httpx.get(f"{base}/CarePlan/{uuid.uuid4().hex[:20]}", headers=FHIR_JSON)
    assert (answer.status_code, shape(answer.json())) == (status, shape(body))
    with pytest.raises(ResourceNotFound):
        await client.read("CarePlan", uuid.uuid4().hex[:20])


async def test_a_stale_if_match_is_409_hapi_0989(base: str, client: AsyncFhirClient) -> None:
    status, body = fixture("update-careplan-409-hapi-0989")
    created = (await client.create(care_plan(uuid.uuid4().hex))).resource
    assert created is not None
    await client.update({**created, "status": "on-hold"})  # now at version 2
    answer = httpx.put(
        f"{base}/CarePlan/{created['id']}",
        json={**created, "status": "revoked"},
        headers={**FHIR_JSON, "If-Match": 'W/"1"'},
    )
    assert (answer.status_code, shape(answer.json())) == (status, shape(body))
    with pytest.raises(VersionConflict):
        await client.update({**created, "status": "revoked"})  # still carries versionId 1


async def test_a_conditional_create_matching_two_is_412_hapi_0958(base: str, client: AsyncFhirClient) -> None:
    status, body = fixture("create-careplan-412-hapi-0958")
    value = uuid.uuid4().hex
    for _ in range(2):
        await client.create(care_plan(value))
    criteria = f"identifier=urn:fhir-cm:canary|{value}"
    answer = httpx.post(f"{base}/CarePlan", json=care_plan(value), headers={**FHIR_JSON, "If-None-Exist": criteria})
    assert (answer.status_code, shape(answer.json())) == (status, shape(body))
    with pytest.raises(AmbiguousMatch):
        await client.create(care_plan(value), if_none_exist=criteria)


async def test_an_unknown_search_parameter_is_400(base: str) -> None:
    status, body = fixture("search-careplan-400-unknown-param")
    answer = httpx.get(f"{base}/CarePlan", params={"careteam": "x"}, headers=FHIR_JSON)
    assert (answer.status_code, shape(answer.json())) == (status, shape(body))
    async with AsyncFhirClient(base, enforce_capabilities=False) as lenient:  # let the server refuse it
        with pytest.raises(InvalidRequest):
            await lenient.search("CarePlan").where("careteam", "x").fetch_all()


async def test_paging_follows_getpages_links_as_the_fixtures_have_them(base: str, client: AsyncFhirClient) -> None:
    _, page1 = fixture("search-careplan-getpages-page1")
    value = uuid.uuid4().hex
    for n in range(5):
        await client.create(care_plan(f"{value}-{n}"))
    first = httpx.get(
        f"{base}/CarePlan", params={"identifier": "urn:fhir-cm:canary|", "_count": 2}, headers=FHIR_JSON
    ).json()
    [expected_next] = [link["url"] for link in page1["link"] if link["relation"] == "next"]
    [real_next] = [link["url"] for link in first["link"] if link["relation"] == "next"]
    # Both are "[base]?_getpages=<search id>&_getpagesoffset=…" links on the server's base.
    for url, root in ((expected_next, expected_next.split("?")[0]), (real_next, base)):
        assert url.startswith(f"{root}?_getpages=") and "_getpagesoffset=2" in url
    seen = [r async for r in client.search("CarePlan").where("identifier", "urn:fhir-cm:canary|").count(2)]
    assert len({r["id"] for r in seen}) == len(seen) >= 5
