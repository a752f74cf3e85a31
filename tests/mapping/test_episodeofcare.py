"""Case ⇄ EpisodeOfCare, and what R4 and R5 do differently with it."""

from __future__ import annotations

import pytest

from fhir_cm.domain import StatusChange, Stay
from fhir_cm.mapping import ResourceKey, UnreadableResourceError, case_to_resources, convert_resource, resources_to_case
from fhir_cm.mapping._codes import (
    EXT_ACUITY,
    EXT_CURRENT_SETTING,
    EXT_ELIGIBILITY,
    EXT_REFERRAL_SOURCE,
    EXT_STATUS_REASON,
)
from fhir_cm.terminology import system_url
from tests.mapping.builders import AGENCY, SYSTEM, D, full_case
from tests.mapping.fhir_check import validate

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


def test_r4_reads_eligibility_an_r5_episode_converted_to_r4_carries_in_its_cross_version_extension() -> None:
    # export --fhir-version R4 from an R5 store, imported elsewhere: the reasons must not be lost.
    as_r4 = convert_resource(episode("R5"), "R5", "R4")
    assert EXT_ELIGIBILITY not in {e["url"] for e in as_r4["extension"]}
    assert resources_to_case([as_r4], "R4", SYSTEM).eligibility == ["readmission", "homelessness"]
    key = ResourceKey("EpisodeOfCare", "case-1")
    base = {**case_to_resources(full_case(), "R4", SYSTEM), key: as_r4}
    assert case_to_resources(full_case(), "R4", SYSTEM, base)[key] == as_r4  # nothing to write
    changed = case_to_resources(full_case(eligibility=["homelessness"]), "R4", SYSTEM, base)[key]
    ours = [e["valueCodeableConcept"]["coding"][0]["code"] for e in changed["extension"] if e["url"] == EXT_ELIGIBILITY]
    assert ours == ["homelessness"]  # a change is written in our extension, which is read first
    assert resources_to_case([changed], "R4", SYSTEM).eligibility == ["homelessness"]
    again = convert_resource(changed, "R4", "R5")  # the carried reasons went: no stale R5 reason returns
    assert resources_to_case([again], "R5", SYSTEM).eligibility == ["homelessness"]


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
        "behavioural-health",
        "closed",
        D(2023, 3, 1),
        D(2023, 5, 1),
    )
    assert case.acuity == "moderate"
    assert (
        case_to_resources(case, version, SYSTEM, {ResourceKey("EpisodeOfCare", "e1"): eoc})[
            ResourceKey("EpisodeOfCare", "e1")
        ]
        == eoc
    )


# --- the current care setting: derived from the stays, written for readers, never read back ---------


def current_setting_extension(eoc: dict) -> dict | None:
    found = [e for e in eoc.get("extension", ()) if e["url"] == EXT_CURRENT_SETTING]
    assert len(found) <= 1
    return found[0] if found else None


def said(extension: dict) -> tuple[str, str, str]:
    parts = {p["url"]: p for p in extension["extension"]}
    [coding] = parts["setting"]["valueCodeableConcept"]["coding"]
    return coding["system"], coding["code"], parts["since"]["valueDate"]


#: A discharge that does not say where to: nobody knows where the person is now.
UNKNOWN = [Stay(id="stay-1", setting="acute-hospital", start=D(2024, 2, 1), end=D(2024, 2, 6))]
IN_SNF = [
    Stay(id="stay-1", setting="acute-hospital", start=D(2024, 2, 1), end=D(2024, 2, 6), discharge_disposition="snf"),
    Stay(id="stay-2", setting="skilled-nursing", status="in-progress", start=D(2024, 2, 6)),
]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_the_episode_says_where_the_person_is_now_and_since_when(version: str) -> None:
    eoc = episode(version, stays=IN_SNF)
    validate(eoc, version)
    extension = current_setting_extension(eoc)
    assert extension is not None
    assert said(extension) == (system_url("care-setting"), "skilled-nursing", "2024-02-06")
    # full_case's one stay ended with a discharge home on 4 January.
    assert said(current_setting_extension(episode(version))) == (system_url("care-setting"), "home", "2024-01-04")


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_no_known_setting_no_extension(version: str) -> None:
    assert current_setting_extension(episode(version, stays=UNKNOWN)) is None


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_the_current_setting_is_not_read_back_into_the_case(version: str) -> None:
    case = full_case(stays=IN_SNF)
    resources = case_to_resources(case, version, SYSTEM)
    eoc = resources[ResourceKey("EpisodeOfCare", "case-1")]
    said_otherwise = current_setting_extension(eoc)
    said_otherwise["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "hospice"
    said_otherwise["extension"][1]["valueDate"] = "2030-01-01"
    assert resources_to_case(resources.values(), version, SYSTEM) == case


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_stale_setting_is_corrected_in_its_place_and_a_lost_one_removed(version: str) -> None:
    key = ResourceKey("EpisodeOfCare", "case-1")
    base = case_to_resources(full_case(stays=IN_SNF), version, SYSTEM)
    foreign = {"url": "http://ehr.example.org/fhir/StructureDefinition/flag", "valueString": "kept"}
    base[key]["extension"].append(foreign)
    home = [
        IN_SNF[0],
        IN_SNF[1].model_copy(update={"status": "finished", "end": D(2024, 2, 20), "discharge_disposition": "home"}),
    ]
    moved = case_to_resources(full_case(stays=home), version, SYSTEM, base)[key]
    urls = [e["url"] for e in moved["extension"]]
    assert urls == [e["url"] for e in base[key]["extension"]]  # same place, the foreign one kept after it
    assert said(current_setting_extension(moved)) == (system_url("care-setting"), "home", "2024-02-20")
    unknown = [IN_SNF[0], IN_SNF[1].model_copy(update={"status": "finished", "end": D(2024, 2, 20)})]
    gone = case_to_resources(full_case(stays=unknown), version, SYSTEM, base)[key]
    assert current_setting_extension(gone) is None
    assert gone["extension"][-1] == foreign
    validate(moved, version)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_the_setting_is_rewritten_only_when_it_changes(version: str) -> None:
    key = ResourceKey("EpisodeOfCare", "case-1")
    base = case_to_resources(full_case(stays=IN_SNF), version, SYSTEM)
    # A server that trims displays still says the same: rewriting it would show as a change.
    del current_setting_extension(base[key])["extension"][0]["valueCodeableConcept"]["coding"][0]["display"]
    # A provider named on a stay changes the Encounter, not where the person is.
    with_provider = [IN_SNF[0], IN_SNF[1].model_copy(update={"provider": AGENCY})]
    after = case_to_resources(full_case(stays=with_provider), version, SYSTEM, base)
    assert after[key] == base[key]
    assert after[ResourceKey("Encounter", "stay-2")] != base[ResourceKey("Encounter", "stay-2")]


def test_another_system_s_episode_gets_no_setting_of_ours() -> None:
    key = ResourceKey("EpisodeOfCare", "case-1")
    theirs = case_to_resources(full_case(stays=UNKNOWN), "R4", SYSTEM)[key]
    theirs["identifier"] = [{"system": "http://ehr.example.org/episodes", "value": "E-77"}]
    after = case_to_resources(full_case(stays=IN_SNF), "R4", SYSTEM, {key: theirs})[key]
    assert current_setting_extension(after) is None


@pytest.mark.parametrize(
    ("start", "read"), [("2024", D(2024, 1, 2)), ("2024-01", D(2024, 1, 2)), ("2023", D(2023, 1, 1))]
)
def test_a_partial_episode_start_is_refined_by_its_status_history_when_that_falls_inside_it(
    start: str, read: object
) -> None:
    """A start of "2024" and a status history beginning 2024-01-02: the case began that day. A history that
    begins outside the span says nothing about which day of it the case began."""
    case = full_case()
    resources = case_to_resources(case, "R4", SYSTEM)
    episode = resources[ResourceKey("EpisodeOfCare", case.id)]
    episode["period"] = {"start": start}

    held = resources_to_case(list(resources.values()), "R4", SYSTEM)
    assert held.period.start == read
    again = case_to_resources(held, "R4", SYSTEM, base=resources)
    assert again[ResourceKey("EpisodeOfCare", case.id)]["period"] == {"start": start}  # as the sender wrote it


@pytest.mark.parametrize("version", ["R4", "R5"])
@pytest.mark.parametrize("end", ["2024-01", "2024"])
def test_a_partial_status_end_holding_the_next_status_s_start_reads_as_that_start_and_stays_as_written(
    version: str, end: str
) -> None:
    """Referred from 2024-01-02 until "2024-01", active from 2024-01-05: the referral ended within January, so
    no later than the day the case went active. Read as the last of January it was after that day, and the
    episode was refused as out of order."""
    case = full_case()
    resources = case_to_resources(case, version, SYSTEM)
    key = ResourceKey("EpisodeOfCare", case.id)
    resources[key]["statusHistory"][0]["period"]["end"] = end

    held = resources_to_case(list(resources.values()), version, SYSTEM)
    assert held.status_history == case.status_history
    assert case_to_resources(held, version, SYSTEM, base=resources)[key] == resources[key]  # as the sender wrote it
    closed = held.model_copy(
        update={
            "status": "closed",
            "status_history": [
                *held.status_history[:-1],
                held.status_history[-1].model_copy(update={"end": D(2024, 3, 1)}),
                StatusChange(status="closed", start=D(2024, 3, 1)),
            ],
            "period": held.period.model_copy(update={"end": D(2024, 3, 1)}),
        }
    )
    after = case_to_resources(closed, version, SYSTEM, base=resources)[key]
    assert after["statusHistory"][0]["period"] == {"start": "2024-01-02", "end": end}
    assert resources_to_case([after], version, SYSTEM).status_history == closed.status_history


@pytest.mark.parametrize("end", ["2024-01-20", "2024-02"])
def test_a_status_end_after_the_next_status_s_start_is_still_out_of_order(end: str) -> None:
    """A full day after the next start, or a month that begins after it: no day the sender could have meant fits."""
    case = full_case()
    resources = case_to_resources(case, "R4", SYSTEM)
    resources[ResourceKey("EpisodeOfCare", case.id)]["statusHistory"][0]["period"]["end"] = end
    with pytest.raises(UnreadableResourceError, match="in order"):
        resources_to_case(list(resources.values()), "R4", SYSTEM)
