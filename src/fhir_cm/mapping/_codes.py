"""Fixed codes the adapter stamps on what it creates, and the URLs of its own extensions.

These are not mappings (no domain value chooses between them), so they are constants here rather
than ConceptMaps in ``mappings/``. Every code was checked against its source: US Core 8 CodeSystems,
the Gravity SDOH profiles, HL7 terminology (THO) and the FHIR core code systems.
"""

from __future__ import annotations

from typing import Any

from ..terminology import CANONICAL_BASE

__all__ = [
    "CAREPLAN_CATEGORIES",
    "CARETEAM_CATEGORY",
    "CONDITION_CLINICAL",
    "EXT_ACUITY",
    "EXT_CURRENT_SETTING",
    "EXT_ELIGIBILITY",
    "EXT_REFERRAL_SOURCE",
    "EXT_STATUS_REASON",
    "EXT_STRENGTH",
    "HEALTH_CONCERN",
    "TASK_FULFILL",
]


def _cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


#: US Core CarePlan category slice ``AssessPlan`` plus a SNOMED CT care-plan category (base value set
#: care-plan-category is SNOMED "is-a 734163000 Care plan").
CAREPLAN_CATEGORIES = (
    _cc("http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "assess-plan", "Assessment and Plan of Treatment"),
    _cc("http://snomed.info/sct", "734163000", "Care plan"),
)
#: LOINC answer "Longitudinal care-coordination focused care team" (care-team-category).
CARETEAM_CATEGORY = _cc("http://loinc.org", "LA28865-6", "Longitudinal care-coordination focused care team")
#: US Core Condition category for problems and health concerns other than the provider's problem list.
HEALTH_CONCERN = _cc("http://hl7.org/fhir/us/core/CodeSystem/condition-category", "health-concern", "Health Concern")
#: Gravity TaskForReferralManagement: the Task asks its owner to fulfil the ServiceRequest in ``focus``.
TASK_FULFILL = _cc("http://hl7.org/fhir/CodeSystem/task-code", "fulfill", "Fulfill the focal request")
#: Condition.clinicalStatus codes: a need is active until it is resolved.
CONDITION_CLINICAL = {
    "active": _cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
    "resolved": _cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved", "Resolved"),
}

_EXT = f"{CANONICAL_BASE}/StructureDefinition"
#: EpisodeOfCare: who referred the person into case management (EpisodeOfCare.referralRequest is a
#: ServiceRequest, not a party). valueReference.
EXT_REFERRAL_SOURCE = f"{_EXT}/referral-source"
#: EpisodeOfCare: how intensive the case management must be; no FHIR element holds it. valueCodeableConcept.
EXT_ACUITY = f"{_EXT}/acuity"
#: EpisodeOfCare: where the person is now (``setting``, valueCodeableConcept from our care-setting
#: CodeSystem) and since when (``since``, valueDate) — derived from the stays, so a receiving provider
#: sees it without reading every Encounter; no core element or HL7 extension says it. Complex.
EXT_CURRENT_SETTING = f"{_EXT}/current-care-setting"
#: EpisodeOfCare (R4 only; R5 has EpisodeOfCare.reason): why the person is eligible. valueCodeableConcept, repeats.
EXT_ELIGIBILITY = f"{_EXT}/eligibility-reason"
#: EpisodeOfCare.statusHistory entry: why the case entered that status. valueString.
EXT_STATUS_REASON = f"{_EXT}/status-reason"
#: Condition: a strength seen in the assessment, next to the need. valueString, repeats.
EXT_STRENGTH = f"{_EXT}/strength"
