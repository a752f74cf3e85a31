"""Goal ⇄ Goal: US Core dates, the target measure (gol-1), self-care goals in R4 and R5."""

from __future__ import annotations

import pytest

from fhir_cm.mapping import ResourceKey, case_to_resources, read_resource
from tests.mapping.builders import SYSTEM, D, full_case


def goals(version: str) -> tuple[dict, dict]:
    resources = case_to_resources(full_case(), version, SYSTEM)
    return resources[ResourceKey("Goal", "goal-1")], resources[ResourceKey("Goal", "goal-2")]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_goal_has_status_description_subject_and_a_date(version: str) -> None:
    housing, walking = goals(version)
    assert (housing["lifecycleStatus"], housing["description"], housing["subject"]["reference"]) == (
        "active",
        {"text": "Stable housing"},
        "Patient/pat-1",
    )
    # gol-1: a target with a detail needs a measure; we send the measure and no detail.
    assert housing["target"] == [{"dueDate": "2024-06-01", "measure": {"text": "lease signed"}}]
    assert "startDate" not in housing
    assert walking["startDate"] == "2024-01-10" and "target" not in walking
    assert {c["code"] for c in housing["achievementStatus"]["coding"]} == {"in-progress"}


@pytest.mark.parametrize(
    ("version", "element", "absent"), [("R4", "expressedBy", "source"), ("R5", "source", "expressedBy")]
)
def test_a_self_care_goal_is_expressed_by_the_patient(version: str, element: str, absent: str) -> None:
    housing, walking = goals(version)
    assert walking[element] == {"reference": "Patient/pat-1", "display": "Ann Example"}
    assert element not in housing and absent not in walking


def test_a_goal_expressed_by_a_practitioner_is_not_self_care() -> None:
    goal = {
        "resourceType": "Goal",
        "id": "g",
        "lifecycleStatus": "active",
        "description": {"text": "x"},
        "subject": {"reference": "Patient/p"},
        "startDate": "2024-01-01",
        "expressedBy": {"reference": "Practitioner/d"},
    }
    assert read_resource(goal, "R4", SYSTEM)["self_care"] is False
    assert read_resource({**goal, "expressedBy": {"reference": "Patient/p"}}, "R4", SYSTEM)["self_care"] is True
    assert read_resource(goal, "R4", SYSTEM)["start"] == D(2024, 1, 1)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_need_named_twice_by_id_and_by_leftover_urn_is_addressed_once(version: str) -> None:
    """A server copy can name the same Condition twice: ``Condition/<id>`` and the ``urn:uuid:`` of the
    transaction that created it (an update written where the Condition's id was not known kept the
    server's reference as someone else's and added its own). Read back, that is still one need."""
    from fhir_cm.mapping import References, resources_to_case

    case = full_case()
    ids = {key: f"srv-{n}" for n, key in enumerate(case_to_resources(case, version, SYSTEM))}
    resources = case_to_resources(case, version, SYSTEM, server_ids=ids)
    condition = ResourceKey("Condition", "need-1")
    goal = resources[ResourceKey("Goal", "goal-1")]
    urn = References(SYSTEM).full_url(condition)
    goal["addresses"] = [{"reference": f"Condition/{ids[condition]}"}, {"reference": urn}]
    copies = [{**r, "id": ids[k]} for k, r in resources.items()]

    assert {g.id: g.addresses for g in resources_to_case(copies, version, SYSTEM).goals}["goal-1"] == ["need-1"]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_the_due_day_is_that_of_the_first_target_saying_when_and_is_changed_there(version: str) -> None:
    """A hospital's goal measures one thing in its first target and says when in its second: the goal
    is due that day (read from the first target only, it had none, and no start day either: no goal)."""
    from fhir_cm.mapping import resources_to_case

    case = full_case()
    resources = case_to_resources(case, version, SYSTEM)
    key = ResourceKey("Goal", "goal-1")
    measured = {"measure": {"text": "HbA1c"}, "detailQuantity": {"value": 7, "unit": "%"}}
    resources[key]["target"] = [measured, {"measure": {"text": "lease signed"}, "dueDate": "2024-06-01"}]

    held = resources_to_case(list(resources.values()), version, SYSTEM)
    assert {g.id: g.due for g in held.goals}["goal-1"] == D(2024, 6, 1)
    assert case_to_resources(held, version, SYSTEM, base=resources)[key] == resources[key]
    later = [g.model_copy(update={"due": D(2024, 9, 1)}) if g.id == "goal-1" else g for g in held.goals]
    moved = case_to_resources(held.model_copy(update={"goals": later}), version, SYSTEM, base=resources)[key]
    assert moved["target"] == [measured, {"measure": {"text": "lease signed"}, "dueDate": "2024-09-01"}]
