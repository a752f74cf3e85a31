"""A move a hospital dated with a month is said as written by `fhir-cm transitions` and the transfer summary.

The domain holds days: an Encounter that ended "2026-03" is a stay ended by 2026-03-31, so the move out
of it is dated the 31st and a follow-up due "2026-04" is due by 2026-04-30. The list and the hand-off
document printed those days, which nobody set; they say "2026-03" and "2026-04" now, and the document's
resources keep the partial dates the hospital wrote (valid FHIR dates), in R4 and R5.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.domain import Case
from fhir_cm.mapping import case_to_bundle
from tests.mapping.fhir_check import validate_bundle
from tests.servers import RunningServer

SYSTEM = "urn:test:month-moves"

CASE = Case.model_validate(
    {
        "id": "case-month",
        "programme": "health-care",
        "status": "active",
        "period": {"start": "2026-01-10"},
        "patient": {"kind": "patient", "id": "patient-m", "name": "Ada Example"},
        "case_manager": {"kind": "practitioner", "id": "cm-1"},
        "stays": [
            {
                "id": "stay-h",
                "setting": "acute-hospital",
                "status": "finished",
                "start": "2026-02-20",
                "end": "2026-03-05",
                "discharge_disposition": "snf",
            },
            {"id": "stay-s", "setting": "skilled-nursing", "status": "in-progress", "start": "2026-04-02"},
        ],
        "referrals": [
            {
                "id": "ref-follow",
                "kind": "follow-up",
                "service": "Post-discharge visit",
                "status": "requested",
                "authored": "2026-03-05",
                "due": "2026-04-10",
                "for_stay": "stay-h",
            }
        ],
    }
)


def _by_month(resource: dict[str, Any]) -> None:
    """The hospital's copies: the stay ended in March, the follow-up is due in April — no days."""
    values = {i.get("value") for i in resource.get("identifier", [])}
    if resource["resourceType"] == "Encounter" and "stay-h" in values:
        resource["period"]["end"] = "2026-03"
    if resource["resourceType"] == "ServiceRequest" and "ref-follow" in values:
        resource["occurrenceDateTime"] = "2026-04"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A store holding the case as the hospital exported it (``fhir-cm import``)."""
    bundle = case_to_bundle(CASE, "R4", SYSTEM)
    for entry in bundle["entry"]:
        _by_month(entry["resource"])
    path = tmp_path / "hospital.json"
    path.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"fullUrl": e["fullUrl"], "resource": e["resource"]} for e in bundle["entry"]],
            }
        )
    )
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'month.db'}", "FHIR_CM_IDENTIFIER_SYSTEM": SYSTEM}
    imported = CliRunner().invoke(app, ["import", str(path)], env=env)
    assert imported.exit_code == 0, imported.output
    return env


def test_the_transitions_command_says_a_move_and_its_follow_up_as_written(env: dict[str, str]) -> None:
    listed = CliRunner().invoke(app, ["transitions"], env=env)
    assert listed.exit_code == 0, listed.output
    [row] = [line.split() for line in listed.stdout.splitlines() if line.startswith(CASE.id)]
    assert row == [CASE.id, "2026-03", "acute-hospital", "skilled-nursing", "snf", "2026-04", "no"]

    as_json = CliRunner().invoke(app, ["transitions", "--json", "--case", CASE.id], env=env)
    [move] = [json.loads(line) for line in as_json.stdout.splitlines()]
    # The days stay what sorting and "overdue" work on; what was written is said beside them.
    assert (move["date"], move["date_as_written"]) == ("2026-03-31", "2026-03")
    assert (move["follow_up_due"], move["follow_up_due_as_written"]) == ("2026-04-30", "2026-04")


def test_the_export_keeps_the_months_as_written(env: dict[str, str]) -> None:
    """The export writes the stored copies back: the hospital's months, not the days they read as."""
    exported = CliRunner().invoke(app, ["export", "--case", CASE.id], env=env)
    assert exported.exit_code == 0, exported.output
    bundle = json.loads(exported.stdout)
    [follow_up] = _resources(bundle, "ServiceRequest")
    [stay] = [r for r in _resources(bundle, "Encounter") if r["identifier"][0]["value"] == "stay-h"]
    assert (follow_up["occurrenceDateTime"], stay["period"]["end"]) == ("2026-04", "2026-03")


def _resources(doc: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == resource_type]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_the_transfer_summary_says_the_month_and_keeps_it_in_its_resources(env: dict[str, str], version: str) -> None:
    printed = CliRunner().invoke(
        app, ["transitions", "--case", CASE.id, "--document", "--fhir-version", version], env=env
    )
    assert printed.exit_code == 0, printed.output
    [doc] = [json.loads(line) for line in printed.stdout.splitlines()]
    validate_bundle(doc, version)  # a month is a valid FHIR date and dateTime
    composition = doc["entry"][0]["resource"]
    assert composition["title"] == "Transfer summary: acute hospital to skilled nursing, 2026-03"
    words = json.dumps(composition["section"])
    assert "Leaving acute hospital for skilled nursing on 2026-03" in words
    assert "Follow-up due 2026-04" in words and "due 2026-04:" in words
    assert "2026-03-31" not in words and "2026-04-30" not in words
    [follow_up] = _resources(doc, "ServiceRequest")
    assert follow_up["occurrenceDateTime"] == "2026-04"
    [stay] = [r for r in _resources(doc, "Encounter") if any(i.get("value") == "stay-h" for i in r["identifier"])]
    period = stay["period"] if version == "R4" else stay["actualPeriod"]
    assert period == {"start": "2026-02-20", "end": "2026-03"}


def end_as_a_month(base: str, system: str, stay_id: str, month: str) -> None:
    """The hospital's system rewrites the stay's Encounter on the server: it ended in ``month``, no day."""
    found = httpx.get(f"{base}/Encounter", params={"identifier": f"{system}|{stay_id}"}).json()
    [encounter] = [e["resource"] for e in found["entry"]]
    encounter["period"]["end"] = month
    put = httpx.put(f"{base}/Encounter/{encounter['id']}", json=encounter)
    assert put.status_code == 200, put.text


@pytest.mark.server
def test_the_pull_says_a_discharge_in_a_month_as_written(tmp_path: Path, sekmet: RunningServer) -> None:
    """``fhir-cm pull`` names each discharge needing a transition plan: "discharged 2026-11", not the 30th."""
    system = f"urn:fhir-cm:test:{uuid.uuid4().hex}"
    env = {
        "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'pull.db'}",
        "FHIR_CM_IDENTIFIER_SYSTEM": system,
        "FHIR_CM_FHIR_BASE": sekmet.base_url,
    }
    data = CASE.model_dump(mode="json")
    data["stays"] = [data["stays"][0] | {"start": "2026-11-01", "end": "2026-11-10", "discharge_disposition": "home"}]
    data["referrals"] = [data["referrals"][0] | {"authored": "2026-11-10", "due": "2026-11-17"}]
    case = Case.model_validate(data)
    file = tmp_path / "case.jsonl"
    file.write_text(case.model_dump_json() + "\n")
    pushed = CliRunner().invoke(app, ["push", str(file)], env=env)
    assert pushed.exit_code == 0, pushed.output

    end_as_a_month(sekmet.base_url, system, "stay-h", "2026-11")

    pulled = CliRunner().invoke(app, ["pull"], env=env)
    assert pulled.exit_code == 0, pulled.output
    [plan] = [line for line in pulled.stderr.splitlines() if "transition plan needed" in line]
    assert f"case {case.id}, discharged 2026-11 (acute-hospital → home); follow-up due 2026-11-17" in plan, plan
