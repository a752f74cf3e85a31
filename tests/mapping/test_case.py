"""Reading a whole case: what a set of resources must have, and errors that name no personal data."""

from __future__ import annotations

import pytest

from fhir_cm.mapping import (
    ResourceKey,
    UnreadableResourceError,
    UnsupportedVersionError,
    case_plan,
    case_to_resources,
    check_version,
    read_resource,
    resource_key,
    resources_to_case,
)
from tests.mapping.builders import SYSTEM, full_case

EOC = ResourceKey("EpisodeOfCare", "case-1")


def resources(version: str = "R4") -> dict:
    return case_to_resources(full_case(), version, SYSTEM)


def test_one_resource_per_entity_and_the_derived_ones() -> None:
    keys = [k for k, _, _ in case_plan(full_case())]
    assert keys[:3] == [EOC, ResourceKey("CarePlan", "case-1-careplan"), ResourceKey("CareTeam", "case-1-careteam")]
    assert ResourceKey("Task", "ref-2-task") in keys
    assert len(keys) == 3 + 2 + 2 + 2 * 2 + 1 + 1


def test_a_case_needs_exactly_one_episode() -> None:
    others = [r for k, r in resources().items() if k != EOC]
    with pytest.raises(UnreadableResourceError, match="exactly one EpisodeOfCare; found 0"):
        resources_to_case(others, "R4", SYSTEM)
    with pytest.raises(UnreadableResourceError, match="found 2"):
        resources_to_case([*resources().values(), {**resources()[EOC], "identifier": [], "id": "x"}], "R4", SYSTEM)


@pytest.mark.parametrize(("element", "named"), [("patient", "patient"), ("type", "type"), ("status", "status")])
def test_an_episode_lacking_what_a_case_needs_says_what(element: str, named: str) -> None:
    res = resources()
    del res[EOC][element]
    with pytest.raises(UnreadableResourceError, match=f"EpisodeOfCare #1 lacks what a case needs: {named}"):
        resources_to_case(res.values(), "R4", SYSTEM)


def test_an_episode_for_a_practitioner_role_has_no_case_manager_rather_than_a_wrong_one() -> None:
    res = resources()
    res[EOC]["careManager"] = {"reference": "PractitionerRole/pr-1"}
    assert resources_to_case(res.values(), "R4", SYSTEM).case_manager is None


def test_errors_name_resources_and_fields_but_no_personal_data() -> None:
    res = resources()
    goal = res[ResourceKey("Goal", "goal-2")]
    del goal["startDate"]
    goal["id"] = "server-goal-2"
    with pytest.raises(UnreadableResourceError) as info:
        resources_to_case(res.values(), "R4", SYSTEM)
    message = str(info.value)
    assert message.startswith("Goal/server-goal-2 cannot be read as a goal:")
    assert "Walk 200 m" not in message and "Ann" not in message


def test_read_resource_reads_one_resource_partially() -> None:
    values = read_resource(resources()[ResourceKey("ServiceRequest", "ref-2")], "R4", SYSTEM)
    assert values["id"] == "ref-2"
    assert (values["kind"], values["service"]) == ("housing", "Housing support")
    assert "status_reason" not in values and "addresses" in values
    with pytest.raises(UnreadableResourceError, match="Patient is not a resource type a case maps to"):
        read_resource({"resourceType": "Patient"}, "R4", SYSTEM)


def test_resource_keys_prefer_our_identifier_then_the_logical_id() -> None:
    assert resource_key(
        {"resourceType": "Goal", "id": "9", "identifier": [{"system": SYSTEM, "value": "g"}]}, SYSTEM
    ) == ResourceKey("Goal", "g")
    assert resource_key(
        {"resourceType": "Goal", "id": "9", "identifier": [{"system": "other", "value": "g"}]}, SYSTEM
    ) == ResourceKey("Goal", "9")
    assert resource_key({"resourceType": "Goal"}, SYSTEM) is None


@pytest.mark.parametrize(
    ("given", "expected"), [("R4", "R4"), ("r4b", "R4"), ("4.0.1", "R4"), ("R5", "R5"), ("5.0.0", "R5")]
)
def test_versions_are_spelled_generously(given: str, expected: str) -> None:
    assert check_version(given) == expected


def test_other_versions_are_refused() -> None:
    with pytest.raises(UnsupportedVersionError, match="use R4 or R5"):
        case_to_resources(full_case(), "STU3", SYSTEM)


@pytest.mark.parametrize(
    ("key", "element", "code", "message"),
    [
        (
            ResourceKey("Goal", "goal-1"),
            "lifecycleStatus",
            "entered-in-error",
            "lifecycleStatus 'entered-in-error' has no counterpart in the domain",
        ),
        (ResourceKey("Task", "ref-1-task"), "status", "ready", "status 'ready' has no counterpart in the domain"),
        (EOC, "status", "someday", "status 'someday' has no counterpart"),
    ],
)
def test_a_status_the_domain_cannot_hold_is_not_read_as_the_default(
    key: ResourceKey, element: str, code: str, message: str
) -> None:
    res = resources()
    res[key][element] = code
    with pytest.raises(UnreadableResourceError, match=message):
        resources_to_case(res.values(), "R4", SYSTEM)


NEGATED = {"url": "http://ehr.example.org/fhir/StructureDefinition/negated", "valueBoolean": True}
REFUTED = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}


@pytest.mark.parametrize("version", ["R4", "R5"])
@pytest.mark.parametrize(
    ("key", "path", "modifier", "named"),
    [
        (ResourceKey("Condition", "need-1"), (), {"modifierExtension": [NEGATED]}, "Condition.modifierExtension"),
        (EOC, (), {"modifierExtension": [NEGATED]}, "EpisodeOfCare.modifierExtension"),
        (
            ResourceKey("CarePlan", "case-1-careplan"),
            (),
            {"modifierExtension": [NEGATED]},
            "CarePlan.modifierExtension",
        ),
        (ResourceKey("ServiceRequest", "ref-2"), (), {"doNotPerform": True}, "ServiceRequest.doNotPerform"),
        (ResourceKey("Condition", "need-2"), (), {"verificationStatus": REFUTED}, "Condition.verificationStatus"),
        (
            ResourceKey("CareTeam", "case-1-careteam"),
            ("participant", 0),
            {"modifierExtension": [NEGATED]},
            "CareTeam.participant.modifierExtension",
        ),
        # A contact that never took place: a call not made (not-done), a record retracted (entered-in-error),
        # or not yet: a letter drafted, not sent (preparation).
        (ResourceKey("Communication", "contact-1"), (), {"status": "not-done"}, "Communication.status"),
        (ResourceKey("Communication", "contact-1"), (), {"status": "preparation"}, "Communication.status"),
        (ResourceKey("Communication", "contact-1"), (), {"status": "entered-in-error"}, "Communication.status"),
        # A request retracted: without its Task it read as a referral requested.
        (ResourceKey("ServiceRequest", "ref-1"), (), {"status": "entered-in-error"}, "ServiceRequest.status"),
    ],
)
def test_a_resource_whose_meaning_a_modifier_turns_is_not_read_as_if_it_were_not_there(
    version: str, key: ResourceKey, path: tuple, modifier: dict, named: str
) -> None:
    # A negated concern read as a need, a "do not refer" read as a referral, say the opposite of the record.
    res = resources(version)
    target = res[key]
    for step in path:
        target = target[step]
    target.update(modifier)
    with pytest.raises(UnreadableResourceError, match=named):
        resources_to_case(res.values(), version, SYSTEM)
    with pytest.raises(UnreadableResourceError, match=named):
        read_resource(res[key], version, SYSTEM)


def test_a_modifier_in_a_contained_resource_a_false_do_not_perform_or_a_confirmed_condition_change_nothing_read() -> (
    None
):
    res = resources()
    request = res[ResourceKey("ServiceRequest", "ref-2")]
    request["doNotPerform"] = False
    request["contained"] = [{"resourceType": "Patient", "id": "p", "modifierExtension": [NEGATED]}]
    need = res[ResourceKey("Condition", "need-1")]
    need["verificationStatus"] = {"coding": [{**REFUTED["coding"][0], "code": "confirmed"}]}
    assert resources_to_case(res.values(), "R4", SYSTEM) == full_case()
