"""A date a hospital wrote as a year or a month is said as written when the case is read.

The domain holds days: a goal due "2025-09" is held as due by 2025-09-30. A case manager reading
"2025-09-30" would take it for a deadline someone set; the hospital only said September.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from fastapi.testclient import TestClient

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.interchange import import_files
from fhir_cm.mapping import case_to_bundle
from fhir_cm.store import Store

from .conftest import Keys, bearer

CASE = Case.model_validate(
    {
        "id": "case-partial",
        "programme": "health-care",
        "status": "active",
        "period": {"start": "2025-01-10"},
        "patient": {"kind": "patient", "id": "patient-1", "name": "Ada Example"},
        "case_manager": {"kind": "practitioner", "id": "cm-1"},
        "goals": [
            {"id": "goal-walk", "description": "Walk 200 m unaided", "start": "2025-02-01", "due": "2025-07-15"},
            {"id": "goal-cook", "description": "Cook a meal", "start": "2025-02-01", "due": "2025-08-20"},
        ],
        "referrals": [
            {
                "id": "ref-home",
                "kind": "home-health",
                "service": "Home care",
                "authored": "2025-02-01",
                "due": "2025-03-01",
            }
        ],
    }
)


def _import_with_partial_dates(tmp_path: Path, store: Store, settings: Settings) -> None:
    """The case as a hospital exports it: the first goal started in 2025 and due in September, the
    referral to be done in March; the second goal as precise as ours."""
    bundle = case_to_bundle(CASE, "R4", settings.identifier_system)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Goal" and resource["identifier"][0]["value"] == "goal-walk":
            resource["startDate"] = "2025"
            resource["target"][0]["dueDate"] = "2025-09"
        if resource["resourceType"] == "ServiceRequest":
            resource["occurrenceDateTime"] = "2025-03"
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": e["fullUrl"], "resource": e["resource"]} for e in bundle["entry"]],
    }
    path = tmp_path / "hospital.json"
    path.write_text(json.dumps(bundle))
    import_files(store, [path], settings)


def test_a_case_read_says_which_days_were_written_as_a_year_or_a_month(
    client: TestClient, keys: Keys, api_store: Store, settings: Settings, tmp_path: Path
) -> None:
    _import_with_partial_dates(tmp_path, api_store, settings)
    body = client.get("/api/v1/cases/case-partial", headers=bearer(keys.supervisor)).json()
    goals = {g["id"]: g for g in body["case"]["goals"]}
    assert [goals["goal-walk"]["start"], goals["goal-walk"]["due"]] == ["2025-01-01", "2025-09-30"]
    assert body["case"]["goals"][0]["id"] == "goal-walk" and body["case"]["referrals"][0]["due"] == "2025-03-31"
    assert body["dates_as_written"] == {
        "/goals/0/start": "2025",
        "/goals/0/due": "2025-09",
        "/referrals/0/due": "2025-03",
    }

    # A day set since is the case's own: said as the day it is.
    changed = client.patch(
        "/api/v1/cases/case-partial/goals/goal-walk",
        json={"due": dt.date(2025, 9, 12).isoformat()},
        headers=bearer(keys.supervisor),
    )
    assert changed.status_code == 200, changed.text
    body = client.get("/api/v1/cases/case-partial", headers=bearer(keys.supervisor)).json()
    assert body["dates_as_written"] == {"/goals/0/start": "2025", "/referrals/0/due": "2025-03"}


def test_a_case_made_here_has_no_date_written_otherwise(client: TestClient, keys: Keys) -> None:
    created = client.post(
        "/api/v1/cases",
        json={"programme": "health-care", "start": "2025-01-10", "patient": {"kind": "patient", "id": "p-2"}},
        headers=bearer(keys.supervisor),
    )
    assert created.status_code == 201, created.text
    read = client.get(f"/api/v1/cases/{created.json()['case']['id']}", headers=bearer(keys.supervisor))
    assert read.status_code == 200 and read.json()["dates_as_written"] == {}
