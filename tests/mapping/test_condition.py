"""Need ⇄ Condition: health concern + domain category, finding, clinical status and strengths."""

from __future__ import annotations

import pytest

from fhir_cm.mapping import ResourceKey, case_to_resources, read_resource
from fhir_cm.mapping._codes import EXT_STRENGTH
from tests.mapping.builders import SYSTEM, D, full_case

NEED = ResourceKey("Condition", "need-1")


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_need_is_a_us_core_health_concern_in_its_domain(version: str) -> None:
    condition = case_to_resources(full_case(), version, SYSTEM)[NEED]
    categories = [{(c["system"], c["code"]) for c in cc["coding"]} for cc in condition["category"]]
    assert categories[0] == {("http://hl7.org/fhir/us/core/CodeSystem/condition-category", "health-concern")}
    assert ("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "sdoh") in categories[1]
    assert condition["code"] == {"text": "No stable housing"}
    assert condition["clinicalStatus"]["coding"][0]["code"] == "active"
    assert "abatementDateTime" not in condition
    assert condition["recordedDate"] == "2024-01-06"
    assert condition["extension"] == [{"url": EXT_STRENGTH, "valueString": "family"}]


def test_a_resolved_need_is_resolved_with_its_date() -> None:
    case = full_case()
    case = case.model_copy(update={"needs": [case.needs[0].model_copy(update={"resolved": D(2024, 3, 3)})]})
    condition = case_to_resources(case, "R4", SYSTEM)[NEED]
    assert condition["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert condition["abatementDateTime"] == "2024-03-03"


def test_a_condition_from_elsewhere_reads_its_words_from_the_coding() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c9",
        "category": [
            {
                "coding": [
                    {"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "code": "functional-status"}
                ]
            }
        ],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "0", "display": "Difficulty walking"}]},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]
        },
        "recordedDate": "2023-11-02T08:00:00Z",
        "subject": {"reference": "Patient/p1"},
    }
    assert read_resource(condition, "R4", SYSTEM) == {
        "id": "c9",
        "domain": "functional",
        "finding": "Difficulty walking",
        "recorded": D(2023, 11, 2),
        "strengths": [],
    }
