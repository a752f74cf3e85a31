"""Writes: headers on the wire, results read from Location/ETag, re-reads after empty answers."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from fhir_cm.fhir import AsyncFhirClient, Capabilities, InvalidResponse, UnsupportedByServer

from .conftest import BASE, Hapi

CAREPLAN = {
    "resourceType": "CarePlan",
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/592080"},
}


async def test_create_posts_fhir_json_without_an_id(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    route = router.post(f"{BASE}/CarePlan").mock(return_value=hapi.response("create-careplan-201"))

    result = await client.create({**CAREPLAN, "id": "local-1"})

    request = route.calls[0].request
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.headers["Prefer"] == "return=representation"
    assert request.headers["User-Agent"].startswith("fhir-cm/")
    assert "id" not in json.loads(request.content)
    assert (result.status, result.created, result.resource_type, result.id, result.version_id) == (
        201,
        True,
        "CarePlan",
        "1924567",
        "1",
    )
    assert result.etag == 'W/"1"' and result.location == f"{BASE}/CarePlan/1924567/_history/1"
    assert result.resource is not None and result.resource["id"] == "1924567"


async def test_conditional_create_uses_the_if_none_exist_header_never_the_query(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    route = router.post(f"{BASE}/CarePlan").mock(return_value=hapi.response("create-careplan-201"))

    await client.create(CAREPLAN, if_none_exist={"identifier": "urn:fhir-cm:id|cp-7"})

    request = route.calls[0].request
    assert request.headers["If-None-Exist"] == "identifier=urn:fhir-cm:id|cp-7"
    assert request.url.query == b""


async def test_update_sends_if_match_from_meta_or_the_given_version(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    route = router.put(f"{BASE}/CarePlan/5").respond(
        200, json={**CAREPLAN, "id": "5", "meta": {"versionId": "4"}}, headers={"ETag": 'W/"4"'}
    )

    result = await client.update({**CAREPLAN, "id": "5", "meta": {"versionId": "3"}})
    await client.update({**CAREPLAN, "id": "5", "meta": {"versionId": "3"}}, version_id="9")
    await client.update({**CAREPLAN, "id": "5", "meta": {"versionId": "3"}}, versioned=False)

    sent = [call.request.headers.get("If-Match") for call in route.calls]
    assert sent == ['W/"3"', 'W/"9"', None]
    assert (result.status, result.created, result.version_id) == (200, False, "4")


async def test_conditional_update_puts_to_the_type_with_criteria(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    route = router.put(f"{BASE}/CarePlan").respond(
        201, headers={"Location": f"{BASE}/CarePlan/77/_history/1"}, json={**CAREPLAN, "id": "77"}
    )

    result = await client.conditional_update(CAREPLAN, "identifier=urn:fhir-cm:id|cp-77")

    assert route.calls[0].request.url.params["identifier"] == "urn:fhir-cm:id|cp-77"
    assert result.created and result.id == "77"


async def test_patch_sends_json_patch(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    route = router.patch(f"{BASE}/Task/3").respond(
        200, json={"resourceType": "Task", "id": "3", "meta": {"versionId": "6"}}
    )
    ops = [{"op": "replace", "path": "/status", "value": "completed"}]

    result = await client.patch("Task", "3", ops, version_id="5")

    request = route.calls[0].request
    assert request.headers["Content-Type"] == "application/json-patch+json"
    assert request.headers["If-Match"] == 'W/"5"'
    assert json.loads(request.content) == ops
    assert result.version_id == "6"


async def test_delete_returns_the_servers_outcome(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.delete(f"{BASE}/CareTeam/375").mock(return_value=hapi.response("delete-careteam-200"))

    result = await client.delete("CareTeam", "375")

    assert (result.status, result.resource_type, result.id, result.resource) == (200, "CareTeam", "375", None)
    assert result.outcome is not None and result.outcome["issue"][0]["code"] == "informational"


async def test_read_and_vread(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Goal/1").respond(json={"resourceType": "Goal", "id": "1", "meta": {"versionId": "2"}})
    router.get(f"{BASE}/Goal/1/_history/1").respond(
        json={"resourceType": "Goal", "id": "1", "meta": {"versionId": "1"}}
    )

    assert (await client.read("Goal", "1"))["meta"]["versionId"] == "2"
    assert (await client.vread("Goal", "1", "1"))["meta"]["versionId"] == "1"


async def test_an_empty_201_is_read_back_through_its_location(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.post(f"{BASE}/CarePlan").respond(
        201, headers={"Location": f"{BASE}/CarePlan/88/_history/1", "ETag": 'W/"1"'}
    )
    read = router.get(f"{BASE}/CarePlan/88").respond(json={**CAREPLAN, "id": "88", "meta": {"versionId": "1"}})

    result = await client.create(CAREPLAN)

    assert read.call_count == 1
    assert result.resource is not None and result.resource["id"] == "88"
    assert (result.id, result.version_id) == ("88", "1")


async def test_an_empty_200_on_a_conditional_create_is_found_by_its_criteria(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    """Azure answers a matched conditional create with 200 and no body."""
    router.post(f"{BASE}/CarePlan").respond(200)
    search = router.get(f"{BASE}/CarePlan", params={"identifier": "urn:fhir-cm:id|cp-1"}).respond(
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 1,
            "entry": [{"resource": {**CAREPLAN, "id": "41", "meta": {"versionId": "3"}}}],
        }
    )

    result = await client.create(CAREPLAN, if_none_exist="identifier=urn:fhir-cm:id|cp-1")

    assert search.call_count == 1
    assert (result.status, result.created, result.id, result.version_id) == (200, False, "41", "3")


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (httpx.Response(200), "answered 200 to a create of a CarePlan without naming"),
        (httpx.Response(201, json={**CAREPLAN}), "answered 201 to a create of a CarePlan without naming"),
        (httpx.Response(201, json={**CAREPLAN, "id": 7}), "answered 201 to a create of a CarePlan without naming"),
        (httpx.Response(201, headers={"Location": f"{BASE}/Patient/9"}), "to a create of a CarePlan without naming"),
    ],
)
async def test_a_create_whose_answer_names_no_id_is_an_invalid_response(
    client: AsyncFhirClient, router: respx.MockRouter, answer: httpx.Response, says: str
) -> None:
    """Callers keep the new id (a subscription's, a placement's ServiceRequest): "None" is not one."""
    router.post(f"{BASE}/CarePlan").mock(return_value=answer)
    router.get(f"{BASE}/Patient/9").respond(json={"resourceType": "Patient", "id": "9"})

    with pytest.raises(InvalidResponse, match=says) as caught:
        await client.create(CAREPLAN)

    # What a failed case shows (its reason): what was wrong with the answer, not just its class.
    assert caught.value.summary is not None and says in caught.value.summary


async def test_writes_are_gated_by_declared_interactions(router: respx.MockRouter) -> None:
    statement = {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "patchFormat": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "CarePlan",
                        "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "patch"}],
                        "conditionalCreate": False,
                    },
                ],
            }
        ],
    }
    async with AsyncFhirClient(BASE, capabilities=Capabilities.from_statement(statement)) as fhir:
        with pytest.raises(UnsupportedByServer, match="create on CarePlan"):
            await fhir.create(CAREPLAN)
        with pytest.raises(UnsupportedByServer, match="resource type"):
            await fhir.update({"resourceType": "Goal", "id": "1"})
        with pytest.raises(UnsupportedByServer, match="JSON Patch"):
            await fhir.patch("CarePlan", "1", [])
    assert len(router.calls) == 0

    async with AsyncFhirClient(
        BASE, capabilities=Capabilities.from_statement(statement), enforce_capabilities=False
    ) as fhir:
        router.post(f"{BASE}/CarePlan").respond(201, json={**CAREPLAN, "id": "1"})
        assert (await fhir.create(CAREPLAN)).id == "1"


async def test_a_model_can_be_written(client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi) -> None:
    from fhir.resources.R4B.careplan import CarePlan

    route = router.post(f"{BASE}/CarePlan").mock(return_value=hapi.response("create-careplan-201"))

    await client.create(CarePlan.model_validate(CAREPLAN))

    assert json.loads(route.calls[0].request.content) == CAREPLAN


async def test_an_http_client_can_be_handed_in(hapi: Hapi) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return hapi.response("create-careplan-201")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        fhir = AsyncFhirClient(BASE, http=http)
        assert (await fhir.create(CAREPLAN)).id == "1924567"
        await fhir.aclose()
        assert not http.is_closed  # the caller's client stays the caller's to close


@pytest.mark.parametrize("dots", [".", ".."])
async def test_an_id_no_url_can_carry_is_refused_before_any_request(
    client: AsyncFhirClient, router: respx.MockRouter, dots: str
) -> None:
    """httpx normalises Patient/.. to the base: the request would go somewhere else entirely."""
    with pytest.raises(ValueError, match="not a valid FHIR id"):
        await client.read("Patient", dots)
    with pytest.raises(ValueError, match="not a valid FHIR id"):
        await client.delete("Patient", dots)
    assert router.calls.call_count == 0
