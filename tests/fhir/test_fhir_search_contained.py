"""A resource whose ``contained`` the release's models cannot even dispatch (a type the release lacks,
a ``resourceType`` that is no string) is quarantined like any other bad entry; the page goes on."""

from __future__ import annotations

from typing import Any

import pytest
import respx

from fhir_cm.fhir import AsyncFhirClient, Quarantined

from .conftest import BASE, Hapi, search_answer


@pytest.mark.parametrize(
    "contained",
    [
        {"resourceType": "Transport", "id": "t", "status": "completed"},  # an R5 type, inside an R4 resource
        {"resourceType": 5, "id": "n"},
    ],
    ids=["type-the-release-lacks", "type-not-a-string"],
)
async def test_a_resource_containing_what_the_release_cannot_read_is_quarantined(
    client: AsyncFhirClient, router: respx.MockRouter, hapi: Hapi, contained: dict[str, Any]
) -> None:
    router.get(f"{BASE}/metadata").mock(return_value=hapi.response("metadata-r4"))
    good = {"resourceType": "EpisodeOfCare", "id": "1", "status": "active", "patient": {"reference": "Patient/1"}}
    odd = {**good, "id": "2", "contained": [contained]}
    router.get(f"{BASE}/EpisodeOfCare").mock(return_value=search_answer(odd, good))
    quarantined: list[Quarantined] = []

    results = [r async for r in client.search("EpisodeOfCare").validated(on_quarantine=quarantined.append)]

    assert [r.id for r in results] == ["1"]
    assert [(q.resource_type, q.id) for q in quarantined] == [("EpisodeOfCare", "2")]
    assert quarantined[0].reason == "a resource inside it (contained, or an entry) is of no R4 resource type"
