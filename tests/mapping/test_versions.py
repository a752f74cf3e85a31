"""R4 ⇄ R5 conversion (fhir_cm.mapping._versions): every official HL7 example, and the rules one by one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import fhir.resources as r5_models
import fhir.resources.R4B as r4_models
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_cm.mapping._versions import (
    UnrepresentableElementError,
    UnsupportedResourceError,
    VersionConversionError,
    convert_resource,
)
from fhir_cm.mapping._versions._schema import element_map, elements_by_name, model_class
from tests.fixtures_hl7 import CASE_MANAGEMENT_TYPES, Hl7Example, example_params, hl7_examples

R4_XVER = "http://hl7.org/fhir/4.0/StructureDefinition/extension-"
R5_XVER = "http://hl7.org/fhir/5.0/StructureDefinition/extension-"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
TABLE = json.loads((Path(__file__).resolve().parents[2] / "mappings" / "r4-r5-elements.json").read_text())


def validate(resource: dict[str, Any], version: str) -> None:
    models = r4_models if version == "R4" else r5_models
    models.get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def extension_urls(element: dict[str, Any]) -> list[str]:
    return [ext["url"] for ext in element.get("extension", [])]


# --- the official examples ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["R4", "R5"])
@pytest.mark.parametrize("resource_type", CASE_MANAGEMENT_TYPES)
def test_every_case_management_type_has_examples_in_both_versions(version: str, resource_type: str) -> None:
    found = hl7_examples((version,), (resource_type,))  # type: ignore[arg-type]
    assert found, f"no {version} example of {resource_type} in fixtures/hl7"
    assert all(example.load()["resourceType"] == resource_type for example in found)


@pytest.mark.parametrize("example", example_params())
def test_example_parses_with_its_own_version(example: Hl7Example) -> None:
    validate(example.load(), example.version)


@pytest.mark.parametrize("example", example_params())
def test_example_in_the_other_version_validates(example: Hl7Example) -> None:
    converted = convert_resource(example.load(), example.version, example.other_version)

    validate(converted, example.other_version)
    assert converted["resourceType"] == example.resource_type
    assert converted.get("id") == example.load().get("id")


@pytest.mark.parametrize("example", example_params())
def test_example_round_trips_through_the_other_version(example: Hl7Example) -> None:
    original = example.load()
    untouched = copy.deepcopy(original)

    there = convert_resource(original, example.version, example.other_version)
    back = convert_resource(there, example.other_version, example.version)

    assert without_meta(back) == without_meta(untouched)
    assert original == untouched, "the converter changed its input"


def _leave_out_some(data: st.DataObject, node: dict[str, Any], cls: Any) -> dict[str, Any]:
    """``node`` without some of its optional elements, at every depth (data types included)."""
    fields = element_map(cls)
    out = {}
    for key, value in node.items():
        elem = fields.get(key.lstrip("_"))
        if elem is not None and not elem.required and data.draw(st.booleans()):
            continue
        if elem is not None and elem.cls is not None and key not in ("extension", "modifierExtension", "meta", "text"):
            if isinstance(value, list):
                value = [_leave_out_some(data, item, elem.cls) if isinstance(item, dict) else item for item in value]
            elif isinstance(value, dict):
                value = _leave_out_some(data, value, elem.cls)
        out[key] = value
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_example_without_some_optional_elements_still_round_trips(data: st.DataObject) -> None:
    """The examples with elements left out: combinations of what is present that no file has."""
    example = data.draw(st.sampled_from(hl7_examples()), label="example")
    part = _leave_out_some(data, example.load(), model_class(example.version, example.resource_type))

    there = convert_resource(part, example.version, example.other_version)

    validate(there, example.other_version)
    assert convert_resource(there, example.other_version, example.version) == part


# --- the table is about real elements -------------------------------------------------------------


def _element_exists(version: str, path: str) -> bool:
    type_name, *steps = path.split(".")
    cls = model_class(version, type_name)  # type: ignore[arg-type]
    for i, step in enumerate(steps):
        fields = element_map(cls)
        if step not in fields:
            return False
        if i < len(steps) - 1:
            cls = fields[step].cls
    return True


def _table_paths() -> list[Any]:
    paths = [(rename["r4"], rename["r5"]) for rename in TABLE["renames"]]
    paths += [(r4, merge["r5"]) for merge in TABLE["merges"]["rules"] for r4 in merge["r4"]]
    paths += [(code["r4"], code["r5"]) for code in TABLE["codes"]["rules"]]
    return [pytest.param(r4, r5, id=f"{r4}->{r5}") for r4, r5 in paths]


@pytest.mark.parametrize(("r4_path", "r5_path"), _table_paths())
def test_every_table_path_is_an_element_of_its_version(r4_path: str, r5_path: str) -> None:
    assert _element_exists("R4", r4_path), r4_path
    assert _element_exists("R5", r5_path), r5_path


@pytest.mark.parametrize("rename", TABLE["renames"], ids=lambda r: r["r4"])
def test_a_renamed_element_has_no_old_name_in_the_new_version(rename: dict[str, str]) -> None:
    assert not _element_exists("R5", rename["r4"])
    assert not _element_exists("R4", rename["r5"])


# --- status codes ---------------------------------------------------------------------------------

# The required value sets, from the 4.0.1 and 5.0.0 specifications.
ENCOUNTER_STATUS = {
    "R4": [
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    ],
    "R5": [
        "planned",
        "in-progress",
        "on-hold",
        "discharged",
        "completed",
        "cancelled",
        "discontinued",
        "entered-in-error",
        "unknown",
    ],
}
CAREPLAN_INTENT = {
    "R4": ["proposal", "plan", "order", "option"],
    "R5": ["proposal", "plan", "order", "option", "directive"],
}


def _encounter(status: str, version: str) -> dict[str, Any]:
    klass = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}
    return {"resourceType": "Encounter", "status": status, "class": klass if version == "R4" else [{"coding": [klass]}]}


def _careplan(intent: str) -> dict[str, Any]:
    return {"resourceType": "CarePlan", "status": "active", "intent": intent, "subject": {"reference": "Patient/1"}}


@pytest.mark.parametrize(("version", "code"), [(v, c) for v, codes in ENCOUNTER_STATUS.items() for c in codes])
def test_every_encounter_status_lands_on_an_allowed_code_and_comes_back(version: str, code: str) -> None:
    other = "R5" if version == "R4" else "R4"
    there = convert_resource(_encounter(code, version), version, other)  # type: ignore[arg-type]

    assert there["status"] in ENCOUNTER_STATUS[other]
    assert convert_resource(there, other, version)["status"] == code  # type: ignore[arg-type]


@pytest.mark.parametrize(("version", "code"), [(v, c) for v, codes in CAREPLAN_INTENT.items() for c in codes])
def test_every_careplan_intent_lands_on_an_allowed_code_and_comes_back(version: str, code: str) -> None:
    other = "R5" if version == "R4" else "R4"
    there = convert_resource(_careplan(code), version, other)  # type: ignore[arg-type]

    assert there["intent"] in CAREPLAN_INTENT[other]
    assert convert_resource(there, other, version)["intent"] == code  # type: ignore[arg-type]


def test_a_status_without_an_equal_keeps_the_original_in_a_cross_version_extension() -> None:
    r5 = convert_resource(_encounter("arrived", "R4"), "R4", "R5")

    assert r5["status"] == "in-progress"
    assert {"url": R4_XVER + "Encounter.status", "valueCode": "arrived"} in r5["extension"]


def test_a_carried_status_is_dropped_once_the_other_version_changed_it() -> None:
    r5 = convert_resource(_encounter("arrived", "R4"), "R4", "R5")
    r5["status"] = "completed"  # someone moved the encounter on, in R5

    r4 = convert_resource(r5, "R5", "R4")

    assert r4["status"] == "finished"
    assert "extension" not in r4


# --- structural changes ---------------------------------------------------------------------------


def test_encounter_r4_to_r5_moves_renamed_and_restructured_elements() -> None:
    r4 = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "period": {"start": "2024-01-01", "end": "2024-01-05"},
        "reasonCode": [{"text": "fall"}],
        "reasonReference": [{"reference": "Condition/c1"}],
        "participant": [{"individual": {"reference": "Practitioner/p1"}}],
        "diagnosis": [{"condition": {"reference": "Condition/c1"}, "use": {"text": "AD"}, "rank": 1}],
        "hospitalization": {"dischargeDisposition": {"text": "home"}, "dietPreference": [{"text": "vegetarian"}]},
        "statusHistory": [{"status": "arrived", "period": {"start": "2024-01-01"}}],
    }

    r5 = convert_resource(r4, "R4", "R5")

    assert r5["status"] == "completed"
    assert r5["class"] == [{"coding": [r4["class"]]}]
    assert r5["actualPeriod"] == r4["period"]
    assert r5["reason"] == [
        {"value": [{"concept": {"text": "fall"}}]},
        {"value": [{"reference": {"reference": "Condition/c1"}}]},
    ]
    assert r5["participant"] == [{"actor": {"reference": "Practitioner/p1"}}]
    assert r5["diagnosis"][0]["condition"] == [{"reference": {"reference": "Condition/c1"}}]
    assert r5["diagnosis"][0]["use"] == [{"text": "AD"}]
    assert r5["diagnosis"][0]["extension"] == [{"url": R4_XVER + "Encounter.diagnosis.rank", "valuePositiveInt": 1}]
    assert r5["admission"] == {"dischargeDisposition": {"text": "home"}}
    assert r5["dietPreference"] == [{"text": "vegetarian"}]
    assert extension_urls(r5) == [R4_XVER + "Encounter.statusHistory"]
    assert r5["extension"][0]["extension"] == [
        {"url": "status", "valueCode": "arrived"},
        {"url": "period", "valuePeriod": {"start": "2024-01-01"}},
    ]
    validate(r5, "R5")
    assert convert_resource(r5, "R5", "R4") == r4


def test_r5_encounter_without_class_gets_a_data_absent_class_in_r4_and_none_back() -> None:
    r5 = {"resourceType": "Encounter", "status": "planned"}

    r4 = convert_resource(r5, "R5", "R4")

    assert r4["class"] == {"extension": [{"url": DATA_ABSENT, "valueCode": "unknown"}]}
    validate(r4, "R4")
    assert convert_resource(r4, "R4", "R5") == r5


def test_r5_only_elements_travel_to_r4_in_cross_version_extensions() -> None:
    r5 = {
        "resourceType": "Encounter",
        "status": "discharged",
        "class": [{"text": "home visit"}],
        "subjectStatus": {"text": "arrived"},
        "virtualService": [{"channelType": {"code": "zoom"}, "addressUrl": "https://example.org/room"}],
        "participant": [{"actor": {"reference": "Patient/1"}}],  # R4 individual cannot be a Patient
    }

    r4 = convert_resource(r5, "R5", "R4")

    assert r4["status"] == "finished"
    assert set(extension_urls(r4)) == {
        R5_XVER + "Encounter.status",
        R5_XVER + "Encounter.class",
        R5_XVER + "Encounter.subjectStatus",
        R5_XVER + "Encounter.virtualService",
    }
    assert "individual" not in r4["participant"][0]
    assert extension_urls(r4["participant"][0]) == [R5_XVER + "Encounter.participant.actor"]
    validate(r4, "R4")
    assert convert_resource(r4, "R4", "R5") == r5


def test_condition_clinical_status_absent_in_r4_is_unknown_in_r5() -> None:
    r4 = {"resourceType": "Condition", "subject": {"reference": "Patient/1"}}

    r5 = convert_resource(r4, "R4", "R5")

    assert r5["clinicalStatus"]["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "unknown"}
    ]
    assert convert_resource(r5, "R5", "R4") == r4


def test_condition_recorder_and_asserter_are_r5_participants() -> None:
    r4 = {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "subject": {"reference": "Patient/1"},
        "recorder": {"reference": "Practitioner/r"},
        "asserter": {"reference": "Patient/1"},
    }

    r5 = convert_resource(r4, "R4", "R5")

    assert [(p["function"]["coding"][0]["code"], p["actor"]["reference"]) for p in r5["participant"]] == [
        ("enterer", "Practitioner/r"),
        ("author", "Patient/1"),
    ]
    assert convert_resource(r5, "R5", "R4") == r4


def test_careplan_activity_detail_travels_in_one_complex_extension() -> None:
    r4 = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/1"},
        "author": {"reference": "Practitioner/1"},
        "activity": [
            {
                "outcomeCodeableConcept": [{"text": "done"}],
                "detail": {"kind": "ServiceRequest", "status": "completed", "scheduledString": "daily"},
            }
        ],
    }

    r5 = convert_resource(r4, "R4", "R5")

    assert r5["custodian"] == {"reference": "Practitioner/1"}
    activity = r5["activity"][0]
    assert activity["performedActivity"] == [{"concept": {"text": "done"}}]
    assert activity["extension"] == [
        {
            "url": R4_XVER + "CarePlan.activity.detail",
            "extension": [
                {"url": "kind", "valueCode": "ServiceRequest"},
                {"url": "status", "valueCode": "completed"},
                {"url": "scheduled", "valueString": "daily"},
            ],
        }
    ]
    validate(r5, "R5")
    assert convert_resource(r5, "R5", "R4") == r4


TWO_ROLE_TEAM = {  # R4 lets a participant have several roles, R5 one
    "resourceType": "CareTeam",
    "participant": [{"role": [{"text": "nurse"}, {"text": "coordinator"}], "member": {"reference": "Practitioner/1"}}],
}


def test_a_lossy_change_keeps_the_original_and_restores_it() -> None:
    r4 = copy.deepcopy(TWO_ROLE_TEAM)

    r5 = convert_resource(r4, "R4", "R5")

    assert r5["participant"][0]["role"] == {"text": "nurse"}
    assert extension_urls(r5["participant"][0]) == [R4_XVER + "CareTeam.participant.role"] * 2
    assert convert_resource(r5, "R5", "R4") == r4


def test_a_change_made_in_the_other_version_wins_over_the_carried_value() -> None:
    r4 = copy.deepcopy(TWO_ROLE_TEAM)
    r5 = convert_resource(r4, "R4", "R5")
    r5["participant"][0]["role"] = {"text": "case manager"}

    back = convert_resource(r5, "R5", "R4")

    assert back["participant"][0] == {"role": [{"text": "case manager"}], "member": {"reference": "Practitioner/1"}}


def test_service_request_and_goal_renames() -> None:
    r4_request = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
        "code": {"text": "food pantry"},
        "locationCode": [{"text": "home"}],
        "supportingInfo": [{"reference": "Observation/1"}],
        "patientInstruction": "bring ID",
    }
    r4_goal = {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "walk"},
        "subject": {"reference": "Patient/1"},
        "expressedBy": {"reference": "Patient/1"},
        "outcomeReference": [{"reference": "Observation/2"}],
    }

    request, goal = convert_resource(r4_request, "R4", "R5"), convert_resource(r4_goal, "R4", "R5")

    assert request["code"] == {"concept": {"text": "food pantry"}}
    assert request["location"] == [{"concept": {"text": "home"}}]
    assert request["supportingInfo"] == [{"reference": {"reference": "Observation/1"}}]
    assert request["patientInstruction"] == [{"instructionMarkdown": "bring ID"}]
    assert goal["source"] == {"reference": "Patient/1"}
    assert goal["outcome"] == [{"reference": {"reference": "Observation/2"}}]
    assert convert_resource(request, "R5", "R4") == r4_request
    assert convert_resource(goal, "R5", "R4") == r4_goal


# --- bundles, contained resources, errors ---------------------------------------------------------


def test_bundle_entries_and_contained_resources_are_converted() -> None:
    careplan = hl7_examples(("R4",), ("CarePlan",))[0].load()
    encounter = _encounter("arrived", "R4")
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": careplan}, {"resource": encounter}],
    }

    r5 = convert_resource(bundle, "R4", "R5")

    validate(r5, "R5")
    assert r5["entry"][1]["resource"]["status"] == "in-progress"
    assert convert_resource(r5, "R5", "R4") == bundle


def test_r5_bundle_issues_cannot_go_to_r4() -> None:
    issues = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "informational"}]}
    with pytest.raises(UnrepresentableElementError):
        convert_resource({"resourceType": "Bundle", "type": "searchset", "issues": issues}, "R5", "R4")


@pytest.mark.parametrize(
    ("resource", "source", "target"),
    [
        ({"resourceType": "MedicinalProduct"}, "R4", "R5"),  # gone in R5
        ({"resourceType": "Transport", "status": "completed", "intent": "order"}, "R5", "R4"),  # new in R5
        ({"resourceType": "CarePlan", "contained": [{"resourceType": "RequestGroup"}]}, "R4", "R5"),
        ({"id": "no-type"}, "R4", "R5"),
    ],
    ids=["gone-in-r5", "new-in-r5", "contained", "no-type"],
)
def test_a_resource_type_missing_from_a_version_is_refused(resource: dict[str, Any], source: str, target: str) -> None:
    with pytest.raises(UnsupportedResourceError):
        convert_resource(resource, source, target)  # type: ignore[arg-type]


def test_errors_share_one_base() -> None:
    assert issubclass(UnsupportedResourceError, VersionConversionError)
    assert issubclass(UnrepresentableElementError, VersionConversionError)


def test_same_version_returns_an_equal_copy() -> None:
    resource = _careplan("plan")
    copied = convert_resource(resource, "R4", "R4")
    assert copied == resource and copied is not resource


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError):
        convert_resource(_careplan("plan"), "R4", "R6")  # type: ignore[arg-type]


def test_a_malformed_cross_version_extension_is_kept_as_it_is() -> None:
    odd = {"url": R4_XVER + "Encounter.statusHistory", "valueString": "not a status history"}
    r5 = {**_encounter("planned", "R5"), "extension": [odd]}

    r4 = convert_resource(r5, "R5", "R4")

    assert "statusHistory" not in r4
    assert r4["extension"] == [odd]


def test_schema_groups_the_types_of_a_choice_under_one_element_name() -> None:
    activity = elements_by_name(element_map(model_class("R4", "CarePlan"))["activity"].cls)  # type: ignore[arg-type]
    scheduled = elements_by_name(activity["detail"][0].cls)["scheduled"]  # type: ignore[arg-type]
    assert {e.key for e in scheduled} == {"scheduledTiming", "scheduledPeriod", "scheduledString"}


def test_an_r5_only_type_in_a_choice_travels_to_r4_and_comes_back() -> None:
    r5 = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "input": [{"type": {"text": "service"}, "valueCodeableReference": {"concept": {"text": "food pantry"}}}],
    }

    r4 = convert_resource(r5, "R5", "R4")

    assert extension_urls(r4["input"][0]) == [R5_XVER + "Task.input.value"]
    validate(r4, "R4")  # value[x] is required in R4: a data-absent-reason stands in
    assert convert_resource(r4, "R4", "R5") == r5


def test_codeable_references_travel_to_r4_as_plain_values_where_they_can() -> None:
    r5 = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "patient": {"reference": "Patient/1"},
        "reason": [
            {
                "use": {"text": "eligibility"},
                "value": [
                    {"concept": {"text": "frailty"}, "reference": {"reference": "Condition/1"}},
                    {"reference": {"reference": "Observation/2"}},
                ],
            }
        ],
    }

    r4 = convert_resource(r5, "R5", "R4")

    (carried,) = r4["extension"]
    assert carried["url"] == R5_XVER + "EpisodeOfCare.reason"
    assert carried["extension"][1:] == [
        {
            "url": "value",
            "extension": [
                {"url": "concept", "valueCodeableConcept": {"text": "frailty"}},
                {"url": "reference", "valueReference": {"reference": "Condition/1"}},
            ],
        },
        {"url": "value", "valueReference": {"reference": "Observation/2"}},
    ]
    validate(r4, "R4")
    assert convert_resource(r4, "R4", "R5") == r5
