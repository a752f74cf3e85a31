"""Every error a server can answer maps to one exception class, with codes and no PHI."""

from __future__ import annotations

import httpx
import pytest
import respx

from fhir_cm.fhir import (
    AmbiguousMatch,
    AsyncFhirClient,
    Conflict,
    FhirError,
    Forbidden,
    InvalidRequest,
    InvalidResource,
    InvalidResponse,
    ResourceGone,
    ResourceNotFound,
    TransientError,
    Unauthorized,
    UnsupportedByServer,
    VersionConflict,
)

from .conftest import BASE, Hapi

CAREPLAN = {
    "resourceType": "CarePlan",
    "id": "1924561",
    "meta": {"versionId": "1"},
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/592080"},
    "note": [{"text": "lives alone, MRN 0042"}],
}


def oo(code: str, diagnostics: str) -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


async def test_404_hapi_2001_is_resource_not_found(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.get(f"{BASE}/CarePlan/1924599").mock(return_value=hapi.response("read-careplan-404-hapi-2001"))

    with pytest.raises(ResourceNotFound) as caught:
        await client.read("CarePlan", "1924599")

    err = caught.value
    assert type(err) is ResourceNotFound
    assert (err.status, err.issue_codes, err.hapi_code) == (404, ("processing",), "HAPI-2001")
    assert (err.resource_type, err.resource_id) == ("CarePlan", "1924599")
    assert str(err).startswith("GET CarePlan/1924599 → 404 ResourceNotFound [processing]: HAPI-2001")


async def test_410_is_resource_gone_and_still_a_not_found(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Goal/9").respond(410, json=oo("deleted", "Resource was deleted at 2025-01-01"))

    with pytest.raises(ResourceGone) as caught:
        await client.read("Goal", "9")

    assert isinstance(caught.value, ResourceNotFound)
    assert caught.value.status == 410


async def test_409_hapi_0989_on_a_versioned_update_is_a_version_conflict(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.put(f"{BASE}/CarePlan/1924561").mock(return_value=hapi.response("update-careplan-409-hapi-0989"))

    with pytest.raises(VersionConflict) as caught:
        await client.update(CAREPLAN)

    err = caught.value
    assert err.status == 409
    assert err.hapi_codes == ("HAPI-0550", "HAPI-0989")
    assert err.hapi_code == "HAPI-0989"


async def test_412_on_if_match_is_a_version_conflict_too(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    router.put(f"{BASE}/CarePlan/1924561").respond(412, json=oo("conflict", 'Version conflict: If-Match W/"1"'))

    with pytest.raises(VersionConflict) as caught:
        await client.update(CAREPLAN)

    assert caught.value.status == 412


async def test_412_hapi_0958_is_an_ambiguous_match_and_hides_the_identifier(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.post(f"{BASE}/CarePlan").mock(return_value=hapi.response("create-careplan-412-hapi-0958"))

    with pytest.raises(AmbiguousMatch) as caught:
        await client.create(CAREPLAN, if_none_exist={"identifier": "urn:fhir-cm:id|cp-1"})

    err = caught.value
    assert (err.status, err.hapi_code) == (412, "HAPI-0958")
    assert "because this search matched 2 resources" in str(err)
    assert "cp-1" not in str(err)  # the identifier value (an MRN elsewhere) is redacted
    assert "identifier=" in str(err)


async def test_412_on_a_conditional_update_without_a_hapi_code_is_ambiguous(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.put(f"{BASE}/CarePlan", params={"identifier": "urn:fhir-cm:id|cp-1"}).respond(
        412, json=oo("processing", "criteria matched 2 resources")
    )

    with pytest.raises(AmbiguousMatch):
        await client.conditional_update(CAREPLAN, {"identifier": "urn:fhir-cm:id|cp-1"})


async def test_400_unknown_search_parameter_is_an_invalid_request(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.get(f"{BASE}/CarePlan").mock(return_value=hapi.response("search-careplan-400-unknown-param"))

    with pytest.raises(InvalidRequest) as caught:
        await client.search("CarePlan", careteam="CareTeam/1").fetch_all()

    err = caught.value
    assert type(err) is InvalidRequest
    assert err.hapi_code == "HAPI-0524"
    assert len(str(err)) < 400  # HAPI lists every valid parameter: the message is cut short


@pytest.mark.parametrize("status", [400, 422])
async def test_400_and_422_on_a_write_are_invalid_resource(
    client: AsyncFhirClient, router: respx.MockRouter, status: int
) -> None:
    router.post(f"{BASE}/CarePlan").respond(status, json=oo("structure", "CarePlan.status: code required"))

    with pytest.raises(InvalidResource) as caught:
        await client.create(CAREPLAN)

    assert caught.value.issue_codes == ("structure",)
    assert "lives alone" not in str(caught.value) and "0042" not in str(caught.value)  # never the body


async def test_not_supported_issue_code_means_unsupported_by_server(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.post(BASE).respond(400, json=oo("not-supported", "Transaction is not supported"))

    with pytest.raises(UnsupportedByServer):
        await client.post_bundle({"resourceType": "Bundle", "type": "transaction", "entry": []}, safe=False)


async def test_409_on_delete_is_a_plain_conflict_not_a_version_conflict(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.delete(f"{BASE}/Patient/592080").respond(
        409,
        json=oo(
            "processing", "HAPI-0515: Unable to delete Patient/592080 because at least one resource has a reference"
        ),
    )

    with pytest.raises(Conflict) as caught:
        await client.delete("Patient", "592080")

    assert type(caught.value) is Conflict


@pytest.mark.parametrize(("status", "cls"), [(401, Unauthorized), (403, Forbidden), (405, UnsupportedByServer)])
async def test_auth_and_method_statuses(
    client: AsyncFhirClient, router: respx.MockRouter, status: int, cls: type[FhirError]
) -> None:
    router.get(f"{BASE}/Task/1").respond(status, json=oo("security", "nope"))

    with pytest.raises(cls) as caught:
        await client.read("Task", "1")

    assert caught.value.status == status


async def test_500_hapi_2223_is_transient_and_not_retried(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    route = router.get(f"{BASE}/CarePlan").mock(return_value=hapi.response("search-500-hapi-2223"))

    with pytest.raises(TransientError) as caught:
        await client.search("CarePlan").fetch_all()

    assert caught.value.hapi_code == "HAPI-2223"
    assert route.call_count == 1


async def test_a_proxy_error_page_without_an_outcome_still_maps(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.get(f"{BASE}/CarePlan/1").respond(404, html="<html><body>Not Found</body></html>")

    with pytest.raises(ResourceNotFound) as caught:
        await client.read("CarePlan", "1")

    assert caught.value.issue_codes == () and caught.value.diagnostics is None


async def test_a_non_json_success_body_is_an_invalid_response(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.get(f"{BASE}/CarePlan/1").respond(200, html="<html>login page</html>")

    with pytest.raises(InvalidResponse):
        await client.read("CarePlan", "1")


async def test_a_redirected_write_is_no_write_and_says_where_the_server_points(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    # A front end moved to https answers 308 to every request; nothing was written. The answer
    # was taken as done (status 308, the id read off its Location), and a transaction's as "not a
    # Bundle", which sent people looking at the server's bundles rather than at the base URL.
    moved = "https://fhir.example.org/r4/CarePlan/1924561?_format=json&identifier=urn:mrn|0042"
    put = router.put(f"{BASE}/CarePlan/1924561").respond(308, headers={"Location": moved})
    post = router.post(BASE).respond(301, headers={"Location": "/baseR4-new"})
    elsewhere = router.route(host="fhir.example.org").respond(200, json=CAREPLAN)
    router.get(f"{BASE}/CarePlan/1924561").respond(200, json=CAREPLAN)  # the copy as it was

    with pytest.raises(InvalidResponse) as caught:
        await client.update(CAREPLAN, versioned=False)
    with pytest.raises(InvalidResponse) as bundle:
        await client.transaction([{"request": {"method": "PUT", "url": "CarePlan/1924561"}, "resource": CAREPLAN}])

    assert str(caught.value) == (
        "PUT CarePlan/1924561 → 308 a redirect to https://fhir.example.org/r4/CarePlan/1924561, not followed: "
        "set the FHIR base to the address the server answers at"
    )
    assert caught.value.status == 308 and "0042" not in str(caught.value)
    assert "a redirect to https://hapi.fhir.org/baseR4-new, not followed" in str(bundle.value)
    assert put.call_count == 1 and post.call_count == 1  # not sent again, not followed
    assert elsewhere.call_count == 0


async def test_network_errors_are_transient_and_name_no_url(client: AsyncFhirClient, router: respx.MockRouter) -> None:
    router.post(f"{BASE}/CarePlan").mock(side_effect=httpx.ReadTimeout("timed out"))

    with pytest.raises(TransientError) as caught:
        await client.create(CAREPLAN)

    assert str(caught.value) == "POST CarePlan → network error (ReadTimeout)"
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_bad_ids_are_refused_before_anything_is_sent() -> None:
    client = AsyncFhirClient(BASE)
    with pytest.raises(ValueError):
        client.history("CarePlan", "../../Patient")


def test_redaction_drops_every_query_value_and_cuts_long_text() -> None:
    from fhir_cm.fhir._errors import redact

    old_hapi = (
        'Failed to CREATE resource with match URL "identifier=urn:mrn|0042&family=Smith" because this search matched 2'
    )
    assert (
        redact(old_hapi)
        == 'Failed to CREATE resource with match URL "identifier=…&family=…" because this search matched 2'
    )
    assert len(redact("x" * 1000)) == 200


@pytest.mark.parametrize(
    ("if_match", "conditional", "cls"),
    [
        (True, True, VersionConflict),
        (False, True, AmbiguousMatch),
        (True, False, VersionConflict),
        (False, False, VersionConflict),
    ],
)
def test_412_rules_when_no_code_says_which(if_match: bool, conditional: bool, cls: type[FhirError]) -> None:
    from fhir_cm.fhir._errors import RequestInfo, error_from_outcome

    info = RequestInfo("PUT", "CarePlan", None, if_match=if_match, conditional=conditional)

    assert type(error_from_outcome(412, None, info)) is cls


# HAPI's 409s come from one exception class (ResourceVersionConflictException, issue code
# "processing"): only the message code and whether an If-Match was sent tell a stale version from a
# unique index clash (1093), a delete blocked by references (0515) or a lost race (0823).
UNIQUE_CLASH = (
    "HAPI-0550: HAPI-1093: Can not create resource of type EpisodeOfCare as it would create a duplicate unique "
    "index matching query: EpisodeOfCare?patient=Patient%2F7 (existing index belongs to EpisodeOfCare/8, new "
    "unique index created by SearchParameter/one-episode)"
)
RACE = "HAPI-0550: HAPI-0823: The operation has failed with a version constraint failure."


@pytest.mark.parametrize(
    ("if_match", "outcome", "cls"),
    [
        (False, oo("processing", UNIQUE_CLASH), Conflict),
        (True, oo("processing", UNIQUE_CLASH), Conflict),  # a clash is no version conflict, If-Match or not
        (False, None, Conflict),  # no If-Match: no version to be stale
        (True, None, VersionConflict),
        (False, oo("processing", "HAPI-0550: HAPI-0989: Trying to update CarePlan/1/_history/1"), VersionConflict),
        (True, oo("duplicate", "CarePlan/1 already exists"), Conflict),
        (False, oo("processing", RACE), TransientError),
        (True, oo("lock-error", "the resource is locked"), TransientError),
    ],
)
def test_409_rules(if_match: bool, outcome: dict[str, object] | None, cls: type[FhirError]) -> None:
    from fhir_cm.fhir._errors import RequestInfo, error_from_outcome

    info = RequestInfo("PUT", "CarePlan", "1", if_match=if_match)

    assert type(error_from_outcome(409, outcome, info)) is cls


@pytest.mark.parametrize(("versioned", "cls"), [(True, VersionConflict), (False, Conflict)])
async def test_a_409_to_a_transaction_is_a_version_conflict_only_when_an_entry_sent_if_match(
    client: AsyncFhirClient, router: respx.MockRouter, versioned: bool, cls: type[FhirError]
) -> None:
    from fhir_cm.fhir import BundleEntry

    router.post(BASE).respond(409)  # no OperationOutcome to say which
    goal = {"resourceType": "Goal", "id": "9", "meta": {"versionId": "3"}}
    create = BundleEntry("POST", "Goal", {"resourceType": "Goal"}, "urn:uuid:5b0c2f56-8d7e-4a47-9f0e-3c2b1a0d9e8f")

    with pytest.raises(FhirError) as caught:
        await client.transaction([create, BundleEntry.update(goal, versioned=versioned)], fallback=False)

    assert type(caught.value) is cls
