"""``_summary=true``, ``text`` and ``data`` on the façade's reads and searches, as FHIR clients send them.

What a summary holds is written here from the FHIR specification (the elements marked Σ, the mandatory
ones), never read from the façade or the models it reads: a wrong flag or a wrong version shows up as
a difference. Each answer is validated against the release's own models, so a subset is still a resource.
"""

# ruff: noqa: F811
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

# The module-scoped ``world`` fixture of the façade tests, shared (its parameters shadow the import).
from tests.mapping.fhir_check import validate, validate_bundle

from .test_fhir_facade import TYPES, READER, World, get, matches, world  # noqa: F401
from .test_fhir_facade_results import included

LENIENT = {**READER, "Prefer": "handling=lenient"}
ALWAYS = {"resourceType", "id", "meta"}
#: Goal's Σ elements (FHIR R4 and R5 Goal): identifier, target, note, addresses, outcome… are not.
GOAL_SUMMARY = {
    "R4": ALWAYS
    | {"implicitRules", "lifecycleStatus", "achievementStatus", "category", "priority", "description"}
    | {"subject", "startDate", "startCodeableConcept", "statusDate", "expressedBy"},
    "R5": ALWAYS
    | {"implicitRules", "modifierExtension", "lifecycleStatus", "achievementStatus", "category", "priority"}
    | {"description", "subject", "startDate", "startCodeableConcept", "statusDate", "source"},
}
#: The top-level elements of min 1 in each release (Condition.clinicalStatus from R5, Encounter.class in R4 only).
MANDATORY = {
    "R4": {"Condition": {"subject"}, "Encounter": {"status", "class"}, "CarePlan": {"status", "intent", "subject"}},
    "R5": {
        "Condition": {"subject", "clinicalStatus"},
        "Encounter": {"status"},
        "CarePlan": {"status", "intent", "subject"},
    },
}


def subsetted(resource: dict[str, Any]) -> bool:
    return any(t.get("code") == "SUBSETTED" for t in resource.get("meta", {}).get("tag", []))


def refused(world: World, url: str, headers: dict[str, str] = READER) -> bool:
    response = world.client.get(url, headers=headers)
    return response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"


def whole(world: World, rtype: str, version: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in matches(get(world.client, f"/fhir/{rtype}?_count=200&_fhirVersion={version}"))}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_summary_true_keeps_the_summary_elements_of_each_resource(world: World, version: str) -> None:
    """fhirpy, HAPI's client and SMART apps send _summary=true: it was a 400, so they got nothing."""
    goals = matches(get(world.client, f"/fhir/Goal?_summary=true&_count=200&_fhirVersion={version}"))
    full = whole(world, "Goal", version)
    assert goals and len(goals) == len(full)
    for goal in goals:
        assert set(goal) <= GOAL_SUMMARY[version] and {"lifecycleStatus", "description", "subject"} <= set(goal)
        assert "target" in full[goal["id"]] and "identifier" in full[goal["id"]]
        assert {k: v for k, v in goal.items() if k != "meta"} == {
            k: v for k, v in full[goal["id"]].items() if k in goal and k != "meta"
        }
        assert subsetted(goal)
    plans = matches(get(world.client, f"/fhir/CarePlan?_summary=true&_fhirVersion={version}"))
    assert plans and all("text" not in p and "activity" not in p and {"status", "intent"} <= set(p) for p in plans)
    for rtype in TYPES:
        bundle = get(world.client, f"/fhir/{rtype}?_summary=true&_count=5&_fhirVersion={version}")
        assert matches(bundle) and all(subsetted(r) for r in matches(bundle)), rtype
        validate_bundle(bundle, version)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_summary_text_keeps_text_and_the_mandatory_elements_of_the_release(world: World, version: str) -> None:
    for rtype, mandatory in MANDATORY[version].items():
        bundle = get(world.client, f"/fhir/{rtype}?_summary=text&_count=5&_fhirVersion={version}")
        full = whole(world, rtype, version)
        for resource in matches(bundle):
            expected = (ALWAYS | {"text"} | mandatory) & set(full[resource["id"]])
            assert set(resource) == expected and subsetted(resource), (rtype, set(resource))
        validate_bundle(bundle, version)
    assert any("text" in p for p in matches(get(world.client, "/fhir/CarePlan?_summary=text")))


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_summary_data_leaves_out_the_text_only(world: World, version: str) -> None:
    full = whole(world, "CarePlan", version)
    plans = matches(get(world.client, f"/fhir/CarePlan?_summary=data&_count=200&_fhirVersion={version}"))
    assert plans and all("text" in full[p["id"]] for p in plans)
    for plan in plans:
        assert {k: v for k, v in plan.items() if k != "meta"} == {
            k: v for k, v in full[plan["id"]].items() if k not in ("text", "meta")
        }
        assert subsetted(plan)
        validate(plan, version)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_read_takes_summary_as_a_search_does(world: World, version: str) -> None:
    for mode in ("true", "text", "data"):
        for rtype in TYPES:
            (found,) = matches(get(world.client, f"/fhir/{rtype}?_summary={mode}&_count=1&_fhirVersion={version}"))
            read = get(world.client, f"/fhir/{rtype}/{found['id']}?_summary={mode}&_fhirVersion={version}")
            assert read == found, (mode, rtype)
    assert refused(world, f"/fhir/Goal/{world.cases[0].goals[0].id}?_summary=count")


def test_summary_shapes_included_resources_too_and_stays_on_the_paging_links(world: World) -> None:
    case = next(c for c in world.cases if c.goals)
    bundle = get(world.client, f"/fhir/CarePlan?patient={case.patient.id}&_include=CarePlan:goal&_summary=true")
    goals = included(bundle)
    assert goals and all(subsetted(g) and "target" not in g for g in goals)
    # _elements names the searched type's elements: the included resources come whole, as on HAPI.
    elements = get(world.client, f"/fhir/CarePlan?patient={case.patient.id}&_include=CarePlan:goal&_elements=status")
    assert included(elements) and not any(subsetted(g) for g in included(elements))
    paged = get(world.client, "/fhir/Goal?_summary=true&_count=2")
    following = next(link["url"] for link in paged["link"] if link["relation"] == "next")
    assert ("_summary", "true") in parse_qsl(urlsplit(following).query)


def test_summary_and_its_combinations_as_hapi_answers_them(world: World) -> None:
    for url in (
        "/fhir/Goal?_summary=true&_elements=target",  # which of the two would shape the resource?
        f"/fhir/Goal/{world.cases[0].goals[0].id}?_summary=data&_elements=target",
        "/fhir/Goal?_summary=true&_summary=data",
        "/fhir/Goal?_summary=short",
    ):
        assert refused(world, url) and refused(world, url, LENIENT), url
    counted = get(world.client, "/fhir/Goal?_summary=count&_elements=target", LENIENT)
    assert counted["total"] == sum(len(c.goals) for c in world.cases) and "entry" not in counted
    assert matches(get(world.client, "/fhir/Goal?_summary=false&_count=3")) == matches(
        get(world.client, "/fhir/Goal?_count=3")
    )


def test_metadata_declares_the_summary_values_served(world: World) -> None:
    statement = get(world.client, "/fhir/metadata", {})
    for resource in statement["rest"][0]["resource"]:
        (summary,) = [p for p in resource["searchParam"] if p["name"] == "_summary"]
        assert all(mode in summary["documentation"] for mode in ("true", "text", "data", "count", "false"))
