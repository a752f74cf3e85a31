"""Case plan ⇄ CarePlan: US Core categories and narrative, references, and R4/R5 element names."""

from __future__ import annotations

import pytest

from fhir_cm.mapping import ResourceKey, case_to_resources, render_narrative, resources_to_case
from tests.mapping.builders import SYSTEM, full_case

PLAN = ResourceKey("CarePlan", "case-1-careplan")


def test_r4_plan_has_us_core_categories_author_and_activity_references() -> None:
    resources = case_to_resources(full_case(), "R4", SYSTEM)
    plan = resources[PLAN]
    assert (plan["status"], plan["intent"]) == ("active", "plan")
    codes = [c["coding"][0]["code"] for c in plan["category"]]
    assert codes == ["assess-plan", "734163000"]
    assert plan["author"] == {"reference": "Practitioner/cm-1", "display": "Casey Manager"}
    assert "custodian" not in plan
    assert len(plan["activity"]) == 2 and all(set(a) == {"reference"} for a in plan["activity"])
    assert len(plan["goal"]) == 2 and len(plan["addresses"]) == 2
    assert plan["addresses"][0]["reference"].startswith("urn:uuid:")


def test_r5_plan_has_custodian_planned_activity_references_and_codeable_reference_addresses() -> None:
    plan = case_to_resources(full_case(), "R5", SYSTEM)[PLAN]
    assert plan["custodian"]["reference"] == "Practitioner/cm-1"
    assert "author" not in plan
    assert all(set(a) == {"plannedActivityReference"} for a in plan["activity"])
    assert all(set(a) == {"reference"} and "reference" in a["reference"] for a in plan["addresses"])


@pytest.mark.parametrize(
    ("case_status", "plan_status"),
    [("referred", "draft"), ("closed", "completed"), ("cancelled", "revoked"), ("on-hold", "on-hold")],
)
def test_the_plan_status_follows_the_case(case_status: str, plan_status: str) -> None:
    from fhir_cm.domain import Period
    from tests.mapping.builders import D

    case = full_case(status=case_status, status_history=[], period=Period(start=D(2024, 1, 2), end=D(2024, 2, 1)))
    assert case_to_resources(case, "R4", SYSTEM)[PLAN]["status"] == plan_status


def test_the_narrative_says_what_the_plan_is_and_escapes_what_it_quotes() -> None:
    div = render_narrative(full_case(plan_summary="Ann <needs> help & support"))
    assert div.startswith('<div xmlns="http://www.w3.org/1999/xhtml"')
    assert "Ann &lt;needs&gt; help &amp; support" in div
    assert "Health care case management, active" in div
    assert "Goals: 2." in div


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_plan_without_any_category_is_read_and_updated_without_adding_one(version: str) -> None:
    """US Core 9 drops the assess-plan requirement: such plans must be accepted as they are."""
    case = full_case()
    resources = case_to_resources(case, version, SYSTEM)
    del resources[PLAN]["category"]
    assert resources_to_case(resources.values(), version, SYSTEM) == case
    updated = case_to_resources(case.model_copy(update={"plan_summary": "New."}), version, SYSTEM, resources)
    assert "category" not in updated[PLAN]
    assert updated[PLAN]["description"] == "New."
