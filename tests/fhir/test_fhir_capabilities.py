"""Reading /metadata: version, models, interactions, search parameters, the case-management view."""

from __future__ import annotations

import pytest
import respx

from fhir_cm.fhir import (
    CASE_MANAGEMENT_TYPES,
    AsyncFhirClient,
    Capabilities,
    FhirRelease,
    UnsupportedByServer,
    model_class,
    release_from_version,
)

from .conftest import BASE, Hapi


def test_reads_a_hapi_r4_statement(hapi: Hapi) -> None:
    caps = hapi.capabilities("metadata-r4")

    assert (caps.fhir_version, caps.release, caps.software_name) == ("4.0.1", FhirRelease.R4, "HAPI FHIR Server")
    assert caps.supports_transaction and caps.supports_batch
    careplan = caps.resource("CarePlan")
    assert careplan is not None
    assert {"read", "vread", "update", "patch", "create", "search-type", "history-instance"} <= careplan.interactions
    assert careplan.search_params["patient"] == "reference"
    assert careplan.conditional_create is True and careplan.versioning == "versioned-update"
    assert "application/json-patch+json" in caps.patch_formats


@pytest.mark.parametrize(
    ("version", "release", "module"),
    [
        ("4.0.1", FhirRelease.R4, "fhir.resources.R4B.careplan"),
        ("4.3.0", FhirRelease.R4B, "fhir.resources.R4B.careplan"),
        ("5.0.0", FhirRelease.R5, "fhir.resources.careplan"),
    ],
)
def test_release_picks_the_models(version: str, release: FhirRelease, module: str) -> None:
    assert release_from_version(version) is release
    assert model_class(release, "CarePlan").__module__ == module


@pytest.mark.parametrize("name", ["Transport", "NotAResource", "None", ""])
def test_a_type_the_release_does_not_have_is_unsupported_not_a_crash(name: str) -> None:
    # R5's Transport is no R4 resource; "None" is what a resource without a resourceType asks for.
    with pytest.raises(UnsupportedByServer, match="is not a R4 resource type"):
        model_class(FhirRelease.R4, name)


def test_an_r5_statement_is_detected(hapi: Hapi) -> None:
    assert hapi.capabilities("metadata-r5").release is FhirRelease.R5


def test_stu3_is_not_spoken() -> None:
    with pytest.raises(UnsupportedByServer, match=r"3\.0\.2"):
        release_from_version("3.0.2")
    caps = Capabilities.from_statement({"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2"})
    assert caps.release is None


def test_ensure_supported_names_what_is_missing(hapi: Hapi) -> None:
    caps = hapi.capabilities("metadata-r5")

    caps.ensure_supported("CarePlan", "update")
    with pytest.raises(UnsupportedByServer, match="does not list this resource type"):
        caps.ensure_supported("Goal", "create")
    with pytest.raises(UnsupportedByServer, match="batch"):
        Capabilities.from_statement({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}).ensure_system(
            "batch"
        )


def test_silence_is_not_a_no() -> None:
    caps = Capabilities.from_statement(
        {
            "resourceType": "CapabilityStatement",
            "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "resource": [{"type": "Task"}]}],
        }
    )

    caps.ensure_supported("Task", "delete")  # the type lists no interactions
    caps.ensure_search("Task", [("owner", "Organization/1"), ("anything", "x")])  # nor search parameters
    with pytest.raises(UnsupportedByServer):
        caps.ensure_supported("Goal", "read")  # but other types are listed and this one is not


def test_includes_are_checked_only_against_declared_lists() -> None:
    caps = Capabilities.from_statement(
        {
            "resourceType": "CapabilityStatement",
            "fhirVersion": "4.0.1",
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": "CarePlan",
                            "searchParam": [{"name": "patient", "type": "reference"}],
                            "searchRevInclude": ["Provenance:target"],
                        }
                    ],
                }
            ],
        }
    )

    caps.ensure_search(
        "CarePlan", [("patient", "Patient/1"), ("_revinclude", "Provenance:target"), ("_include", "CarePlan:goal")]
    )
    with pytest.raises(UnsupportedByServer, match="_revinclude=Task:focus"):
        caps.ensure_search("CarePlan", [("_revinclude", "Task:focus")])


def test_case_management_view(hapi: Hapi) -> None:
    view = hapi.capabilities("metadata-r5").case_management_view()

    assert (view.fhir_version, view.release, view.transaction, view.batch) == ("5.0.0", "R5", True, True)
    by_type = {row.type: row for row in view.types}
    assert tuple(by_type) == CASE_MANAGEMENT_TYPES and len(by_type) == 10
    assert {"EpisodeOfCare", "ServiceRequest", "Task", "Provenance", "Patient"} <= set(by_type)
    assert by_type["CarePlan"].declared and "patient" in by_type["CarePlan"].search_params
    assert not by_type["Goal"].declared and by_type["Goal"].interactions == []


async def test_metadata_is_read_once(client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi) -> None:
    route = router.get(f"{BASE}/metadata").mock(return_value=hapi.response("metadata-r4"))

    first = await client.capabilities()
    again = await client.capabilities()
    assert await client.release() is FhirRelease.R4

    assert first is again and route.call_count == 1


async def test_a_configured_version_needs_no_metadata(router: respx.MockRouter) -> None:
    async with AsyncFhirClient(BASE, fhir_version="R5") as fhir:
        assert await fhir.release() is FhirRelease.R5
    assert len(router.calls) == 0
