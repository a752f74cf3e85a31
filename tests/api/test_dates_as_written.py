"""A date a hospital wrote as a year or a month is said as written when the case is read.

The domain holds days: a goal due "2025-09" is held as due by 2025-09-30. A case manager reading
"2025-09-30" would take it for a deadline someone set; the hospital only said September.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _import(
    tmp_path: Path, store: Store, settings: Settings, case: Case, edit: Callable[[dict[str, Any]], None]
) -> None:
    """``case`` as a hospital exports it, each of its resources as ``edit`` rewrites it."""
    bundle = case_to_bundle(case, "R4", settings.identifier_system)
    for entry in bundle["entry"]:
        edit(entry["resource"])
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": e["fullUrl"], "resource": e["resource"]} for e in bundle["entry"]],
    }
    path = tmp_path / "hospital.json"
    path.write_text(json.dumps(bundle))
    import_files(store, [path], settings)


def _import_with_partial_dates(tmp_path: Path, store: Store, settings: Settings) -> None:
    """The case as a hospital exports it: the first goal started in 2025 and due in September, the
    referral to be done in March; the second goal as precise as ours."""

    def edit(resource: dict[str, Any]) -> None:
        if resource["resourceType"] == "Goal" and resource["identifier"][0]["value"] == "goal-walk":
            resource["startDate"] = "2025"
            resource["target"][0]["dueDate"] = "2025-09"
        if resource["resourceType"] == "ServiceRequest":
            resource["occurrenceDateTime"] = "2025-03"

    _import(tmp_path, store, settings, CASE, edit)


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


TEAMED = Case.model_validate(
    {
        **CASE.model_dump(exclude={"goals", "referrals"}),
        "id": "case-team",
        "status_history": [
            {"status": "referred", "start": "2025-01-10", "end": "2025-02-28"},
            {"status": "active", "start": "2025-02-28"},
        ],
        "team": [
            {"id": "m-nurse", "role": "nurse", "party": {"kind": "practitioner", "id": "n-1"}, "start": "2025-01-01"},
            {
                "id": "m-social",
                "role": "social-worker",
                "party": {"kind": "practitioner", "id": "s-1"},
                "start": "2025-01-10",
                "end": "2025-03-31",
            },
        ],
    }
)


def team_as_a_hospital_wrote_it(resource: dict[str, Any]) -> None:
    """``TEAMED``'s CareTeam and EpisodeOfCare as a hospital wrote them: the nurse joined in January, the
    social worker left in March; the case was referred until February, the active status (the current
    one) left out of statusHistory as many servers do."""
    if resource["resourceType"] == "CareTeam":
        for item in resource["participant"]:
            if item["id"] == "m-nurse":
                item["period"]["start"] = "2025-01"
            if item["id"] == "m-social":
                item["period"]["end"] = "2025-03"
    if resource["resourceType"] == "EpisodeOfCare":
        resource["statusHistory"] = [{"status": "planned", "period": {"start": "2025-01-10", "end": "2025-02"}}]


def test_team_memberships_and_status_changes_written_as_a_month_are_said_so(
    client: TestClient, keys: Keys, api_store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Team memberships and status changes are items of the case's CareTeam and EpisodeOfCare: the
    case's page read the nurse as joining on 2025-01-01 and the case as active from 2025-02-28."""
    _import(tmp_path, api_store, settings, TEAMED, team_as_a_hospital_wrote_it)
    body = client.get("/api/v1/cases/case-team", headers=bearer(keys.supervisor)).json()
    team = {m["id"]: m for m in body["case"]["team"]}
    assert (team["m-nurse"]["start"], team["m-social"]["end"]) == ("2025-01-01", "2025-03-31")
    history = body["case"]["status_history"]
    assert [(s["status"], s["start"], s["end"]) for s in history] == [
        ("referred", "2025-01-10", "2025-02-28"),
        ("active", "2025-02-28", None),
    ]
    nurse = [m["id"] for m in body["case"]["team"]].index("m-nurse")
    social = 1 - nurse
    assert body["dates_as_written"] == {
        f"/team/{nurse}/start": "2025-01",
        f"/team/{social}/end": "2025-03",
        "/status_history/0/end": "2025-02",
        "/status_history/1/start": "2025-02",
    }

    # The nurse leaves on a day set here: that day is the case's own; the month she joined stays as written.
    left = client.delete("/api/v1/cases/case-team/team/m-nurse?on=2025-05-15", headers=bearer(keys.supervisor))
    assert left.status_code == 200, left.text
    body = client.get("/api/v1/cases/case-team", headers=bearer(keys.supervisor)).json()
    assert [m["end"] for m in body["case"]["team"] if m["id"] == "m-nurse"] == ["2025-05-15"]
    assert body["dates_as_written"] == {
        f"/team/{nurse}/start": "2025-01",
        f"/team/{social}/end": "2025-03",
        "/status_history/0/end": "2025-02",
        "/status_history/1/start": "2025-02",
    }
