"""Team ⇄ CareTeam: US Core role + member, R4/R5 participant shapes, and member ids that last."""

from __future__ import annotations

import pytest

from fhir_cm.mapping import ResourceKey, case_to_resources, resources_to_case
from tests.mapping.builders import SYSTEM, full_case

TEAM = ResourceKey("CareTeam", "case-1-careteam")
SCT = "http://snomed.info/sct"


def test_r4_participants_have_a_role_list_and_a_period() -> None:
    team = case_to_resources(full_case(), "R4", SYSTEM)[TEAM]
    assert team["category"][0]["coding"][0]["code"] == "LA28865-6"
    assert (team["status"], team["subject"]["reference"]) == ("active", "Patient/pat-1")
    first = team["participant"][0]
    assert first["id"] == "tm-1"
    assert {"system": SCT, "code": "768832004", "display": "Case manager (occupation)"} in first["role"][0]["coding"]
    assert first["member"]["reference"] == "Practitioner/cm-1"
    assert first["period"] == {"start": "2024-01-05"}


def test_r5_participants_have_one_role_and_a_coverage_period() -> None:
    first = case_to_resources(full_case(), "R5", SYSTEM)[TEAM]["participant"][1]
    assert {"system": SCT, "code": "116154003", "display": "Patient (person)"} in first["role"]["coding"]
    assert first["coveragePeriod"] == {"start": "2024-01-05"}
    assert "period" not in first


def test_a_case_without_a_team_has_no_care_team_until_one_exists_on_the_server() -> None:
    case = full_case(team=[])
    assert TEAM not in case_to_resources(case, "R4", SYSTEM)
    base = case_to_resources(full_case(), "R4", SYSTEM)
    emptied = case_to_resources(case, "R4", SYSTEM, base)[TEAM]
    assert "participant" not in emptied


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_participants_written_elsewhere_get_ids_that_stay_the_same(version: str) -> None:
    case = full_case()
    resources = case_to_resources(case, version, SYSTEM)
    foreign = {
        "role": [{"coding": [{"system": SCT, "code": "46255001"}]}]
        if version == "R4"
        else {"coding": [{"system": SCT, "code": "46255001"}]},
        "member": {"reference": "Practitioner/ph-1"},
    }
    resources[TEAM]["participant"].append(foreign)
    first = resources_to_case(resources.values(), version, SYSTEM)
    again = resources_to_case(resources.values(), version, SYSTEM)
    (pharmacist,) = [m for m in first.team if m.role == "pharmacist"]
    assert pharmacist.id == next(m.id for m in again.team if m.role == "pharmacist")
    assert pharmacist.party.id == "ph-1"
    # And exporting the imported team gives back the participant as it was, without an added id.
    assert case_to_resources(first, version, SYSTEM, resources)[TEAM]["participant"][2] == foreign
