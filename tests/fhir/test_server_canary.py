"""Canary: sekmet-fhir's known gaps and differences from HAPI.

These tests pin behaviour the rest of the suite works around. When one fails, sekmet changed:
re-read its release notes, then adjust the tests that rely on the gap (and this file).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from importlib.metadata import version

import pytest

from fhir_cm.fhir import AsyncFhirClient, UnsupportedByServer, VersionConflict

pytestmark = pytest.mark.server


@pytest.fixture
async def raw(sekmet_base: str) -> AsyncIterator[AsyncFhirClient]:
    """A client that does not enforce capabilities, so the gaps can be observed."""
    async with AsyncFhirClient(sekmet_base, enforce_capabilities=False) as client:
        yield client


def test_the_pinned_release_is_the_one_canaried() -> None:
    assert version("sekmet-fhir") == "0.1.1"


async def test_goal_and_careteam_are_missing_from_the_capability_statement(raw: AsyncFhirClient) -> None:
    caps = await raw.capabilities()

    assert caps.fhir_version == "4.0.1"
    assert caps.resource("CarePlan") is not None and caps.resource("Task") is not None
    assert caps.resource("Goal") is None and caps.resource("CareTeam") is None


@pytest.mark.parametrize(
    ("resource_type", "body"),
    [("Goal", {"lifecycleStatus": "active", "description": {"text": "walk"}}), ("CareTeam", {"status": "active"})],
)
async def test_goal_and_careteam_search_parameters_are_ignored(
    raw: AsyncFhirClient, resource_type: str, body: dict[str, object]
) -> None:
    mine, theirs = f"Patient/{uuid.uuid4().hex}", f"Patient/{uuid.uuid4().hex}"
    other = await raw.create({"resourceType": resource_type, **body, "subject": {"reference": theirs}})

    # _id works; were the subject filter applied, another patient's resource could not match
    page = await anext(raw.search(resource_type, subject=mine, _id=other.id).pages())

    assert [r["subject"]["reference"] for r in page.matches] == [theirs]
    assert any(i.get("code") == "not-supported" and i.get("severity") == "warning" for i in page.issues)


async def test_an_enforcing_client_refuses_goal_searches_on_sekmet(sekmet_base: str) -> None:
    async with AsyncFhirClient(sekmet_base) as strict:
        await strict.capabilities()
        with pytest.raises(UnsupportedByServer, match="Goal"):
            await strict.search("Goal", patient="Patient/1").fetch_all()


async def test_unknown_search_parameters_are_ignored_not_400(raw: AsyncFhirClient) -> None:
    page = await anext(raw.search("CarePlan", careteam="CareTeam/x").count(1).pages())  # HAPI: 400 HAPI-0524

    assert any(i.get("code") == "not-supported" for i in page.issues)


async def test_a_stale_if_match_is_412_where_hapi_says_409(raw: AsyncFhirClient) -> None:
    made = await raw.create({"resourceType": "Patient", "active": True})
    await raw.update({"resourceType": "Patient", "id": made.id, "active": False}, versioned=False)

    with pytest.raises(VersionConflict) as caught:
        await raw.update({"resourceType": "Patient", "id": made.id, "meta": {"versionId": "1"}})

    assert caught.value.status == 412


async def test_invalid_codes_and_dangling_references_are_accepted(raw: AsyncFhirClient) -> None:
    made = await raw.create(
        {
            "resourceType": "CarePlan",
            "status": "not-a-status",
            "intent": "plan",
            "subject": {"reference": f"Patient/{uuid.uuid4().hex}"},
        }
    )

    assert made.created
