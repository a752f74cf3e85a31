"""What a case manager's writes through the API become as FHIR: resources a server takes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_cm.domain import Case
from fhir_cm.mapping import case_to_resources

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
