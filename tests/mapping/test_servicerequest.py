"""Referral ⇄ ServiceRequest + Task: US Core request, Gravity fulfilment task, R4/R5 shapes."""

from __future__ import annotations

import pytest

from fhir_cm.domain import ReferralStatus
from fhir_cm.mapping import ResourceKey, UnreadableResourceError, case_to_resources, resources_to_case
from tests.mapping.builders import SYSTEM, full_case

SR = ResourceKey("ServiceRequest", "ref-1")
TASK = ResourceKey("Task", "ref-1-task")
SCT = "http://snomed.info/sct"


def test_r4_request_has_us_core_category_code_and_reason_references() -> None:
    resources = case_to_resources(full_case(), "R4", SYSTEM)
    sr = resources[SR]
    assert (sr["status"], sr["intent"]) == ("active", "order")
    assert {(c["system"], c["code"]) for c in sr["category"][0]["coding"]} == {(SCT, "386053000")}
    assert sr["code"]["text"] == "Home physiotherapy 2x/week"
    assert (SCT, "417511005") in {(c["system"], c["code"]) for c in sr["code"]["coding"]}
    assert sr["occurrenceDateTime"] == "2024-01-14" and sr["authoredOn"] == "2024-01-07"
    assert sr["performer"] == [{"reference": "Organization/org-home-care"}]
    assert sr["requester"]["reference"] == "Practitioner/cm-1"
    assert sr["reasonReference"] == [resources[ResourceKey("Goal", "goal-2")]["addresses"][0]]
    assert sr["encounter"]["reference"].startswith("urn:uuid:")


def test_r5_request_wraps_code_and_reasons_in_codeable_references() -> None:
    sr = case_to_resources(full_case(), "R5", SYSTEM)[SR]
    assert sr["code"]["concept"]["text"] == "Home physiotherapy 2x/week"
    assert set(sr["reason"][0]) == {"reference"}
    assert "reasonReference" not in sr


def test_a_social_referral_is_an_sdoh_social_service_request() -> None:
    sr = case_to_resources(full_case(), "R4", SYSTEM)[ResourceKey("ServiceRequest", "ref-2")]
    assert {(c["system"], c["code"]) for c in sr["category"][0]["coding"]} == {
        ("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "sdoh"),
        (SCT, "410606002"),
    }


@pytest.mark.parametrize(
    ("version", "reason"), [("R4", {"text": "no capacity"}), ("R5", {"concept": {"text": "no capacity"}})]
)
def test_the_task_carries_the_exact_status_and_its_reason(version: str, reason: dict) -> None:
    resources = case_to_resources(full_case(), version, SYSTEM)
    task = resources[ResourceKey("Task", "ref-2-task")]
    assert (task["status"], task["statusReason"], task["intent"]) == ("rejected", reason, "order")
    assert task["code"]["coding"][0]["code"] == "fulfill"
    assert resources[ResourceKey("ServiceRequest", "ref-2")]["status"] == "revoked"
    requested = resources[TASK]
    assert requested["focus"]["reference"].startswith("urn:uuid:")
    assert requested["for"]["reference"] == "Patient/pat-1"
    assert requested["owner"] == {"reference": "Organization/org-home-care"}
    assert requested["authoredOn"] == "2024-01-07"


@pytest.mark.parametrize("status", list(ReferralStatus))
def test_every_referral_status_survives_through_the_task(status: ReferralStatus) -> None:
    case = full_case()
    referral = case.referrals[0].model_copy(update={"status": status, "status_reason": "why"})
    case = case.model_copy(update={"referrals": [referral]})
    assert resources_to_case(case_to_resources(case, "R4", SYSTEM).values(), "R4", SYSTEM) == case


def test_without_its_task_a_request_reads_its_coarse_status() -> None:
    case = full_case()
    resources = case_to_resources(case, "R4", SYSTEM)
    del resources[TASK]
    (read,) = [r for r in resources_to_case(resources.values(), "R4", SYSTEM).referrals if r.id == "ref-1"]
    assert read.status == "requested"


def test_a_revoked_request_without_its_task_cannot_say_why_and_is_unreadable() -> None:
    resources = case_to_resources(full_case(), "R4", SYSTEM)
    del resources[ResourceKey("Task", "ref-2-task")]
    with pytest.raises(
        UnreadableResourceError, match=r"ServiceRequest #\d+ cannot be read as a referral: .*status_reason"
    ):
        resources_to_case(resources.values(), "R4", SYSTEM)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_request_from_elsewhere_is_read_by_its_codes_and_exported_unchanged(version: str) -> None:
    code = {"coding": [{"system": SCT, "code": "710911006", "display": "Referral to housing service (procedure)"}]}
    ehr_request = {
        "resourceType": "ServiceRequest",
        "id": "ehr-sr-1",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": SCT, "code": "410606002"}]}],
        "code": {"concept": code} if version == "R5" else code,
        "subject": {"reference": "Patient/pat-1"},
        "authoredOn": "2024-01-07T10:00:00Z",
        "requester": {"reference": "PractitionerRole/someone"},
    }
    case = full_case(referrals=[])
    resources = case_to_resources(case, version, SYSTEM)
    read = resources_to_case([*resources.values(), ehr_request], version, SYSTEM)
    (referral,) = read.referrals
    assert (referral.id, referral.kind, referral.service, referral.status) == (
        "ehr-sr-1",
        "housing",
        "Referral to housing service (procedure)",
        "requested",
    )
    key = ResourceKey("ServiceRequest", "ehr-sr-1")
    assert case_to_resources(read, version, SYSTEM, {key: ehr_request})[key] == ehr_request
