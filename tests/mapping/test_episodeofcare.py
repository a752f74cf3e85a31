"""Case ⇄ EpisodeOfCare, and what R4 and R5 do differently with it."""

from __future__ import annotations

import pytest

from fhir_cm.mapping import ResourceKey, case_to_resources, resources_to_case
from fhir_cm.mapping._codes import EXT_ACUITY, EXT_ELIGIBILITY, EXT_REFERRAL_SOURCE, EXT_STATUS_REASON
from tests.mapping.builders import SYSTEM, D, full_case

SCT = "http://snomed.info/sct"


def episode(version: str, **changes) -> dict:
    return case_to_resources(full_case(**changes), version, SYSTEM)[ResourceKey("EpisodeOfCare", "case-1")]


def test_r4_carries_eligibility_in_extensions() -> None:
    eoc = episode("R4")
    reasons = [e["valueCodeableConcept"] for e in eoc["extension"] if e["url"] == EXT_ELIGIBILITY]
    assert [c["coding"][0]["code"] for c in reasons] == ["readmission", "homelessness"]
    assert {"system": SCT, "code": "32911000", "display": "Homeless"} in reasons[1]["coding"]
    assert "reason" not in eoc


def test_r5_carries_eligibility_in_reason() -> None:
    eoc = episode("R5")
    assert [r["value"][0]["concept"]["coding"][0]["code"] for r in eoc["reason"]] == ["readmission", "homelessness"]
    assert EXT_ELIGIBILITY not in {e["url"] for e in eoc["extension"]}


def test_r5_reads_eligibility_an_r4_episode_carried_in_extensions() -> None:
    r4 = episode("R4")
    as_r5 = {**episode("R5"), "extension": r4["extension"]}
    del as_r5["reason"]
    assert resources_to_case([as_r5], "R5", SYSTEM).eligibility == ["readmission", "homelessness"]
    key = ResourceKey("EpisodeOfCare", "case-1")
    base = {**case_to_resources(full_case(), "R5", SYSTEM), key: as_r5}
    assert case_to_resources(full_case(), "R5", SYSTEM, base)[key] == as_r5


@pytest.mark.parametrize(("version", "element"), [("R4", "team"), ("R5", "careTeam")])
def test_the_team_is_linked_by_its_version_s_element(version: str, element: str) -> None:
    eoc = episode(version)
    assert len(eoc[element]) == 1
    assert ({"team", "careTeam"} - {element}).isdisjoint(eoc)
    assert element not in episode(version, team=[])


def test_status_history_keeps_reasons_and_acuity_and_referral_source_ride_on_extensions() -> None:
    eoc = episode("R4")
    assert eoc["status"] == "active"
    assert eoc["statusHistory"][0] == {
        "status": "planned",
        "period": {"start": "2024-01-02", "end": "2024-01-05"},
        "extension": [{"url": EXT_STATUS_REASON, "valueString": "from ED"}],
    }
    extensions = {e["url"]: e for e in eoc["extension"]}
    assert extensions[EXT_ACUITY]["valueCodeableConcept"]["coding"][0]["code"] == "high"
    assert extensions[EXT_REFERRAL_SOURCE]["valueReference"] == {"reference": "Organization/org-hospital"}
    assert eoc["careManager"] == {"reference": "Practitioner/cm-1", "display": "Casey Manager"}


def test_a_rehabilitation_programme_also_says_post_acute_care() -> None:
    codes = {(c["system"], c["code"]) for c in episode("R4", programme="rehabilitation")["type"][0]["coding"]}
    assert ("http://terminology.hl7.org/CodeSystem/episodeofcare-type", "pac") in codes


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_an_episode_without_dates_of_its_own_is_dated_by_its_history(version: str) -> None:
    eoc = {
        "resourceType": "EpisodeOfCare",
        "id": "e1",
        "status": "finished",
        "statusHistory": [
            {"status": "active", "period": {"start": "2023-03-01", "end": "2023-05-01"}},
            {"status": "finished", "period": {"start": "2023-05-01"}},
        ],
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/episodeofcare-type", "code": "da"}]}],
        "patient": {"reference": "Patient/p1"},
        "period": {"end": "2023-05-01"},
    }
    case = resources_to_case([eoc], version, SYSTEM)
    assert (case.programme, case.status, case.period.start, case.period.end) == (
        "behavioural-health", "closed", D(2023, 3, 1), D(2023, 5, 1))
    assert case.acuity == "moderate"
    assert case_to_resources(case, version, SYSTEM, {ResourceKey("EpisodeOfCare", "e1"): eoc})[
        ResourceKey("EpisodeOfCare", "e1")] == eoc
