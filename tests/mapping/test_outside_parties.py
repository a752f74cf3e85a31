"""A party another server keeps (``https://other.example/fhir/Practitioner/cm-1``) is an outside party: read
as such, never as the local ``Practitioner/cm-1``, and written back exactly as it was written."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from fhir_cm.domain import Party, TeamMember
from fhir_cm.mapping import (
    References,
    ResourceKey,
    UnreadableResourceError,
    case_to_resources,
    party_reference,
    read_party,
    resources_to_case,
)
from tests.mapping.builders import D, MANAGER, SYSTEM, full_case

HERE, OTHER = "https://ehr.example.org/fhir", "https://other.example/fhir"
TEAM = ResourceKey("CareTeam", "case-1-careteam")
EPISODE = ResourceKey("EpisodeOfCare", "case-1")
PLAN = ResourceKey("CarePlan", "case-1-careplan")
REFERRAL = ResourceKey("ServiceRequest", "ref-1")
STAY = ResourceKey("Encounter", "stay-1")
#: The other server's practitioner under the id of the local case manager, as the hospital wrote it.
ELSEWHERE = {"reference": f"{OTHER}/Practitioner/{MANAGER.id}", "type": "Practitioner", "display": "Dr Elsewhere"}
OUTSIDE = Party(kind="practitioner", id=MANAGER.id, name="Dr Elsewhere", server=OTHER)


def copies(version: str = "R4") -> dict[ResourceKey, dict[str, Any]]:
    """The case's resources as a server at ``HERE`` holds them."""
    return copy.deepcopy(case_to_resources(full_case(), version, SYSTEM))


def with_outside_member(resources: dict[ResourceKey, dict[str, Any]], version: str = "R4") -> dict[str, Any]:
    role = {"coding": [{"system": "http://snomed.info/sct", "code": "46255001"}]}  # pharmacist
    member = {"id": "p-else", "role": [role] if version == "R4" else role, "member": dict(ELSEWHERE)}
    resources[TEAM]["participant"].append(member)
    return member


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_care_team_member_on_another_server_is_an_outside_party_not_the_local_one(version: str) -> None:
    resources = copies(version)
    with_outside_member(resources, version)

    case = resources_to_case(resources.values(), version, SYSTEM, bases=[HERE])

    (member,) = [m for m in case.team if m.id == "p-else"]
    assert member.party == OUTSIDE
    assert member.party != MANAGER.model_copy(update={"name": "Dr Elsewhere"})
    assert case.case_manager == MANAGER  # the local one, still
    # Written out afresh (an export, a server that lost it), it names the other server's record.
    (written,) = [p for p in case_to_resources(case, version, SYSTEM)[TEAM]["participant"] if p["id"] == "p-else"]
    assert written["member"] == {"reference": ELSEWHERE["reference"], "display": "Dr Elsewhere"}


def test_at_the_servers_own_base_or_with_no_base_known_the_member_is_the_local_one() -> None:
    resources = copies()
    member = with_outside_member(resources)
    assert [m.party for m in resources_to_case(resources.values(), "R4", SYSTEM).team if m.id == "p-else"] == [
        MANAGER.model_copy(update={"name": "Dr Elsewhere"})
    ]
    member["member"]["reference"] = f"{HERE}/Practitioner/{MANAGER.id}"
    case = resources_to_case(resources.values(), "R4", SYSTEM, bases=[HERE + "/"])
    assert [m.party.server for m in case.team if m.id == "p-else"] == [None]


def test_writing_back_keeps_the_outside_reference_as_written_while_the_team_changes() -> None:
    resources = copies()
    member = with_outside_member(resources)
    case = resources_to_case(resources.values(), "R4", SYSTEM, bases=[HERE])
    edited = case.model_copy(
        update={"team": [*case.team, TeamMember(id="tm-9", role="case-manager", party=MANAGER, start=D(2024, 2, 1))]}
    )
    out = case_to_resources(edited, "R4", SYSTEM, resources, bases=[HERE])
    participants = {p["id"]: p for p in out[TEAM]["participant"]}
    assert participants["p-else"] == member  # untouched: reference, type and display
    assert participants["tm-9"]["member"]["reference"] == f"Practitioner/{MANAGER.id}"


def test_an_outside_care_manager_manages_the_case_as_an_outside_party_and_the_plan_names_them() -> None:
    resources = copies()
    resources[EPISODE]["careManager"] = dict(ELSEWHERE)
    case = resources_to_case(resources.values(), "R4", SYSTEM, bases=[HERE])
    assert case.case_manager == OUTSIDE
    out = case_to_resources(case, "R4", SYSTEM, resources, bases=[HERE])
    assert out[EPISODE]["careManager"] == ELSEWHERE  # as written
    # The plan's author, derived from the case manager, names the same person; the referral the local
    # practitioner asked for stays theirs.
    assert out[PLAN]["author"]["reference"] == ELSEWHERE["reference"]
    assert case.referrals[0].requester == MANAGER
    assert out[REFERRAL]["requester"] == {"reference": f"Practitioner/{MANAGER.id}", "display": MANAGER.name}


def test_an_outside_provider_performer_requester_and_referral_source_are_outside_parties() -> None:
    resources = copies()
    resources[STAY]["serviceProvider"] = {"reference": f"{OTHER}/Organization/org-hospital"}
    resources[REFERRAL]["performer"] = [{"reference": f"{OTHER}/Organization/org-home-care", "display": "Far Care"}]
    resources[REFERRAL]["requester"] = {"reference": f"{OTHER}/Organization/org-asks"}
    task = next(r for k, r in resources.items() if k.type == "Task")
    task["requester"] = {"reference": f"{OTHER}/Organization/org-asks"}
    task["owner"] = resources[REFERRAL]["performer"][0]
    for ext in resources[EPISODE]["extension"]:
        if ext["url"].endswith("/referral-source"):
            ext["valueReference"] = {"reference": f"{OTHER}/Organization/org-hospital"}

    case = resources_to_case(resources.values(), "R4", SYSTEM, bases=[HERE])

    (stay,) = case.stays
    assert stay.provider == Party(kind="organisation", id="org-hospital", server=OTHER)
    assert case.referral_source == Party(kind="organisation", id="org-hospital", server=OTHER)
    referral = next(r for r in case.referrals if r.id == "ref-1")
    assert referral.target == Party(kind="organisation", id="org-home-care", name="Far Care", server=OTHER)
    assert referral.requester == Party(kind="organisation", id="org-asks", server=OTHER)
    out = case_to_resources(case, "R4", SYSTEM, resources, bases=[HERE])
    assert out == resources  # nothing to write: every outside reference holds as written


def test_a_case_of_another_servers_patient_does_not_read() -> None:
    resources = copies()
    resources[EPISODE]["patient"] = {"reference": f"{OTHER}/Patient/pat-1"}
    with pytest.raises(UnreadableResourceError, match="another server"):
        resources_to_case(resources.values(), "R4", SYSTEM, bases=[HERE])


def test_a_party_reference_round_trips_by_its_server_and_is_never_moved() -> None:
    refs = References(SYSTEM, parties={f"Practitioner/{MANAGER.id}": "Practitioner/42"}, bases=[HERE])
    assert refs.party(OUTSIDE) == {"reference": ELSEWHERE["reference"], "display": "Dr Elsewhere"}
    assert refs.party(MANAGER)["reference"] == "Practitioner/42"
    assert refs.read_party(ELSEWHERE) == OUTSIDE
    assert refs.read_party({"reference": "Practitioner/42"}) == MANAGER.model_copy(update={"name": None})
    assert read_party(party_reference(OUTSIDE), bases=[HERE]) == OUTSIDE
    assert read_party({"reference": f"{OTHER}/Practitioner/x/_history/3"}, bases=[HERE]) == Party(
        kind="practitioner", id="x", server=OTHER
    )
    assert read_party(ELSEWHERE, bases=[OTHER]) == MANAGER.model_copy(update={"name": "Dr Elsewhere"})


@pytest.mark.parametrize("server", ["other.example/fhir", "https://", "https://x.org/fhir?a=1", "https://x.org/a b"])
def test_an_outside_partys_server_is_an_absolute_base(server: str) -> None:
    with pytest.raises(ValidationError):
        Party(kind="practitioner", id="x", server=server)
