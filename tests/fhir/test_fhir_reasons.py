"""The server's reason for a refusal: status, issue code, message code, first line — never our data."""

from __future__ import annotations

import httpx
import pytest
import respx

from fhir_cm.fhir import AsyncFhirClient, BundleEntry, FhirError, ServerReason, server_reason

from .conftest import BASE, Hapi

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:fhir-cm:id", "value": "MRN-0042917"}],
    "name": [{"text": "Margaret Okonkwo-Hale"}],
    "birthDate": "1948-02-29",
}


def outcome(*issues: dict[str, object]) -> dict[str, object]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


async def refusal(client: AsyncFhirClient, router: respx.MockRouter, status: int, body: object) -> FhirError:
    router.post(f"{BASE}/Patient").respond(status, json=body)
    with pytest.raises(FhirError) as caught:
        await client.create(PATIENT, if_none_exist="identifier=urn:fhir-cm:id|MRN-0042917")
    return caught.value


async def test_hapi_codes_and_the_first_line_only(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi
) -> None:
    router.put(f"{BASE}/CarePlan/1924561").mock(return_value=hapi.response("update-careplan-409-hapi-0989"))
    with pytest.raises(FhirError) as caught:
        await client.update({"resourceType": "CarePlan", "id": "1924561", "meta": {"versionId": "1"}})

    reason = server_reason(caught.value)

    assert reason == ServerReason(
        status=409,
        code="processing",
        message_code="HAPI-0989",
        diagnostics="Trying to update CarePlan/1924561/_history/1 but this is not the current version",
    )
    assert reason.text == f"HTTP 409 processing HAPI-0989: {reason.diagnostics}"


async def test_values_of_ours_the_server_quotes_back_are_dropped(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    diagnostics = (
        'HAPI-0450: HAPI-1821: [element="birthDate"] Invalid attribute value "1948-02-29": '
        "no such day for Margaret Okonkwo-Hale (MRN-0042917) in Patient.birthDate\n"
        "  at line 3: Margaret Okonkwo-Hale"
    )
    error = await refusal(
        client, router, 400, outcome({"severity": "error", "code": "processing", "diagnostics": diagnostics})
    )

    reason = server_reason(error, [PATIENT])

    assert reason.message_code == "HAPI-1821" and reason.code == "processing" and reason.status == 400
    assert (
        reason.diagnostics
        == '[element="birthDate"] Invalid attribute value "…": no such day for … (…) in Patient.birthDate'
    )
    for ours in ("1948-02-29", "Margaret", "Okonkwo", "MRN-0042917", "line 3"):
        assert ours not in reason.text


async def test_quoted_text_is_dropped_unless_it_is_a_fhir_name(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    diagnostics = (
        'Unknown search parameter "careteam" for "CarePlan"; "CarePlan.status" wants a code, not "Dr. Who" or \'x9\''
    )
    error = await refusal(
        client, router, 400, outcome({"severity": "error", "code": "invalid", "diagnostics": diagnostics})
    )

    reason = server_reason(error)  # nothing of ours named: the quoting rule alone

    assert reason.diagnostics == (
        'Unknown search parameter "careteam" for "CarePlan"; "CarePlan.status" wants a code, not "…" or \'x9\''
    )


async def test_medplums_details_text_and_the_first_error_issue_are_used(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.post(BASE).respond(
        400,
        json=outcome(
            {"severity": "information", "code": "informational", "diagnostics": "took 3 ms"},
            {
                "severity": "error",
                "code": "invalid",
                "details": {"text": "Transaction contains more update operations than allowed"},
            },
            {"severity": "error", "code": "processing", "diagnostics": "second error"},
        ),
    )
    with pytest.raises(FhirError) as caught:
        await client.transaction([BundleEntry.create({"resourceType": "Goal"})], fallback=False)

    reason = server_reason(caught.value)

    assert (reason.status, reason.code, reason.message_code) == (400, "invalid", None)
    assert reason.diagnostics == "Transaction contains more update operations than allowed"


async def test_long_diagnostics_are_cut_to_200_and_query_values_dropped(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    long = (
        "HAPI-0958: Failed to CREATE resource with match URL Patient?identifier=urn:fhir-cm:id|MRN-0042917 " + "x" * 400
    )
    error = await refusal(
        client, router, 412, outcome({"severity": "error", "code": "processing", "diagnostics": long})
    )

    reason = server_reason(error)

    assert reason.diagnostics is not None and len(reason.diagnostics) == 200 and reason.diagnostics.endswith("…")
    assert "MRN-0042917" not in reason.diagnostics and "identifier=…" in reason.diagnostics
    assert reason.message_code == "HAPI-0958"


async def test_an_answer_without_an_operation_outcome_gives_the_status(
    client: AsyncFhirClient, router: respx.MockRouter
) -> None:
    router.post(f"{BASE}/Patient").mock(return_value=httpx.Response(413, text="<html>Request Entity Too Large</html>"))
    with pytest.raises(FhirError) as caught:
        await client.create(PATIENT)

    reason = server_reason(caught.value)

    assert reason == ServerReason(status=413) and reason.text == "HTTP 413"
