"""What a case manager's writes through the API become as FHIR: resources a server takes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_cm.domain import Case
from fhir_cm.mapping import case_to_resources, resources_to_case
from fhir_cm.store import ApiRole, Store, create_api_key

from ..mapping.fhir_check import validate
from .conftest import Keys, bearer, create

BASE = "/api/v1/cases/case-a"


def _resources(client: TestClient, key: str, version: str) -> list[dict[str, Any]]:
    case = Case.model_validate(client.get(BASE, headers=bearer(key)).json()["case"])
    return list(case_to_resources(case, version, "https://example.org/ids").values())


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_empty_notes_reasons_and_measures_are_none_so_the_fhir_is_valid(
    client: TestClient, keys: Keys, version: str
) -> None:
    """FHIR has no empty strings: a contact with the note "", a goal with the measure "" and a referral
    with the reason "" were stored as such and became ``payload.contentString: ""``, ``target.measure.text:
    ""`` and ``statusReason.text: ""`` — resources a server refuses, so the case's push failed for ever.
    An empty text is none."""
    create(client, keys.cm1, id="case-a")
    h = bearer(keys.cm1)
    contact = client.post(f"{BASE}/contacts", json={"date": "2025-06-01", "mode": "phone", "note": ""}, headers=h)
    goal = client.post(
        f"{BASE}/goals", json={"id": "g1", "description": "d", "due": "2025-09-01", "target": ""}, headers=h
    )
    referral = {"id": "r1", "kind": "food", "service": "s", "authored": "2025-06-01", "status_reason": ""}
    made = client.post(f"{BASE}/referrals", json=referral, headers=h)
    assert (contact.status_code, goal.status_code, made.status_code) == (201, 201, 201)
    assert (contact.json()["note"], goal.json()["target"], made.json()["status_reason"]) == (None, None, None)
    patched = client.patch(f"{BASE}/goals/g1", json={"target": ""}, headers=h)
    assert (patched.status_code, patched.json()["target"]) == (200, None)
    for resource in _resources(client, keys.cm1, version):
        validate(resource, version)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_referral_in_a_case_with_no_case_manager_names_who_asked_for_it(
    client: TestClient, api_store: Store, keys: Keys, version: str
) -> None:
    """A supervisor's referral in a case with no case manager went out with no ``requester``, which the
    Gravity referral Task (and its receiving organisation) requires: the requester is the supervisor's
    practitioner, the one to call about it; a key naming none must name the requester in the body."""
    with api_store.session() as s:
        _, lead = create_api_key(s, name="lead", role=ApiRole.SUPERVISOR, practitioner_id="lead-1")
    create(client, keys.supervisor, id="case-a", case_manager=None)
    referral = {"id": "r1", "kind": "food", "service": "s", "authored": "2025-06-01"}
    refused = client.post(f"{BASE}/referrals", json=referral, headers=bearer(keys.supervisor))
    assert refused.status_code == 409, refused.text
    assert "requester" in refused.json()["detail"]
    made = client.post(f"{BASE}/referrals", json=referral, headers=bearer(lead))
    assert made.status_code == 201, made.text
    assert made.json()["requester"] == {"kind": "practitioner", "id": "lead-1", "name": None}
    named = {**referral, "id": "r2", "requester": {"kind": "organisation", "id": "cm-unit"}}
    assert client.post(f"{BASE}/referrals", json=named, headers=bearer(keys.supervisor)).status_code == 201
    case = Case.model_validate(client.get(BASE, headers=bearer(lead)).json()["case"])
    resources = list(case_to_resources(case, version, "https://example.org/ids").values())
    requesters = sorted(
        str(r.get("requester", {}).get("reference"))
        for r in resources
        if r["resourceType"] in ("Task", "ServiceRequest")
    )
    assert requesters == ["Organization/cm-unit"] * 2 + ["Practitioner/lead-1"] * 2, requesters
    for resource in resources:
        validate(resource, version)
    assert resources_to_case(resources, version, "https://example.org/ids") == case  # nothing lost
