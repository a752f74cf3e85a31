"""case_to_bundle: conditional creates for new resources, versioned updates for known ones."""

from __future__ import annotations

import copy

import pytest

from fhir_cm.mapping import ResourceKey, case_to_bundle, case_to_resources, if_none_exist
from tests.mapping.builders import SYSTEM, full_case
from tests.mapping.fhir_check import us_core_problems, validate_bundle


def test_a_new_case_is_posted_with_conditional_creates() -> None:
    bundle = case_to_bundle(full_case(), "R4", SYSTEM)
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
    for entry in bundle["entry"]:
        resource, request = entry["resource"], entry["request"]
        (ident,) = [i for i in resource["identifier"] if i["system"] == SYSTEM]
        assert request == {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": f"identifier={SYSTEM}|{ident['value']}",
        }
        assert entry["fullUrl"].startswith("urn:uuid:") and "id" not in resource


def test_full_urls_are_the_same_on_every_run_and_differ_by_identifier_system() -> None:
    first = [e["fullUrl"] for e in case_to_bundle(full_case(), "R4", SYSTEM)["entry"]]
    again = [e["fullUrl"] for e in case_to_bundle(full_case(), "R5", SYSTEM)["entry"]]
    other = [e["fullUrl"] for e in case_to_bundle(full_case(), "R4", "urn:other:system")["entry"]]
    assert first == again
    assert len(set(first)) == len(first)
    assert not set(first) & set(other)


def test_references_inside_the_transaction_are_its_full_urls() -> None:
    bundle = case_to_bundle(full_case(), "R4", SYSTEM)
    by_type = {e["resource"]["resourceType"]: e for e in bundle["entry"]}
    episode_url = by_type["EpisodeOfCare"]["fullUrl"]
    assert by_type["CarePlan"]["resource"]["supportingInfo"] == [{"reference": episode_url}]
    assert by_type["Encounter"]["resource"]["episodeOfCare"] == [{"reference": episode_url}]
    assert us_core_problems(bundle, SYSTEM) == []


def test_known_resources_are_put_with_if_match_and_unchanged_ones_left_out() -> None:
    case = full_case()
    ids = {k: f"srv-{n}" for n, k in enumerate(case_to_resources(case, "R4", SYSTEM))}
    base = case_to_resources(case, "R4", SYSTEM, server_ids=ids)
    for n, resource in enumerate(base.values()):
        resource["meta"] = {"versionId": str(n + 1)}
    goal_key = ResourceKey("Goal", "goal-1")
    changed = case.model_copy(
        update={"goals": [case.goals[0].model_copy(update={"target": "keys in hand"}), case.goals[1]]}
    )
    bundle = case_to_bundle(changed, "R4", SYSTEM, base)
    (entry,) = bundle["entry"]
    assert entry["request"] == {
        "method": "PUT",
        "url": f"Goal/{base[goal_key]['id']}",
        "ifMatch": f'W/"{base[goal_key]["meta"]["versionId"]}"',
    }
    assert entry["resource"]["id"] == base[goal_key]["id"]
    assert entry["resource"]["target"][0]["measure"]["text"] == "keys in hand"
    everything = case_to_bundle(changed, "R4", SYSTEM, base, include_unchanged=True)
    assert len(everything["entry"]) == len(base)
    assert {e["request"]["method"] for e in everything["entry"]} == {"PUT"}


def test_a_new_resource_refers_to_known_ones_by_their_server_id() -> None:
    case = full_case()
    ids = {k: f"srv-{k.value}" for k in case_to_resources(case, "R5", SYSTEM)}
    base = case_to_resources(case, "R5", SYSTEM, server_ids=ids)
    new_goal = case.goals[0].model_copy(update={"id": "goal-9", "addresses": ["need-2"]})
    bundle = case_to_bundle(case.model_copy(update={"goals": [*case.goals, new_goal]}), "R5", SYSTEM, base)
    entries = {(e["resource"]["resourceType"], e["request"]["method"]): e for e in bundle["entry"]}
    goal = entries[("Goal", "POST")]["resource"]
    assert goal["addresses"] == [{"reference": "Condition/srv-need-2"}]
    plan = entries[("CarePlan", "PUT")]["resource"]
    assert plan["goal"][-1] == {"reference": entries[("Goal", "POST")]["fullUrl"]}
    assert us_core_problems(bundle, SYSTEM, "R5") == []
    validate_bundle(bundle, "R5")


def test_leftover_urn_references_in_a_base_copy_become_server_references() -> None:
    case = full_case()
    base = {k: {**r, "id": f"srv-{k.value}"} for k, r in case_to_resources(case, "R4", SYSTEM).items()}
    bundle = case_to_bundle(case, "R4", SYSTEM, base)
    plan = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    assert plan["supportingInfo"] == [{"reference": "EpisodeOfCare/srv-case-1"}]
    assert {e["request"]["method"] for e in bundle["entry"]} == {"PUT"}
    assert us_core_problems(bundle, SYSTEM) == []


def test_server_ids_without_a_base_copy_put_a_fresh_resource() -> None:
    case = full_case()
    key = ResourceKey("EpisodeOfCare", "case-1")
    bundle = case_to_bundle(case, "R4", SYSTEM, server_ids={key: "eoc-42"})
    entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "EpisodeOfCare")
    assert entry["request"] == {"method": "PUT", "url": "EpisodeOfCare/eoc-42"}
    assert entry["resource"]["id"] == "eoc-42"
    plan = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    assert plan["resource"]["supportingInfo"] == [{"reference": "EpisodeOfCare/eoc-42"}]


def test_a_transaction_missing_an_assess_plan_category_fails_the_us_core_check() -> None:
    bundle = case_to_bundle(full_case(), "R4", SYSTEM)
    broken = copy.deepcopy(bundle)
    plan = next(e["resource"] for e in broken["entry"] if e["resource"]["resourceType"] == "CarePlan")
    plan["category"] = plan["category"][1:]
    del plan["text"]
    assert us_core_problems(broken, SYSTEM) == [
        "entry 1 (CarePlan): no assess-plan category",
        "entry 1 (CarePlan): no narrative",
    ]


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("urn:fhir-cm:id", "identifier=urn:fhir-cm:id|goal-1"),
        ("https://ids.example.org/cases", "identifier=https://ids.example.org/cases|goal-1"),
        ("https://ids.example.org/a&b", "identifier=https://ids.example.org/a%26b|goal-1"),
    ],
)
def test_if_none_exist_escapes_only_what_would_break_the_query(system: str, expected: str) -> None:
    assert if_none_exist(system, "goal-1") == expected
