"""Vocabularies of case management, in the case manager's words.

These are plain string enums: their values are what the API, the CLI's JSON and the store speak.
How each maps onto FHIR codes is data in ``mappings/`` (see ``fhir_cm.terminology``), not here.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Acuity",
    "AssessmentDomain",
    "CareSetting",
    "CaseStatus",
    "ContactMode",
    "DischargeDisposition",
    "EligibilityReason",
    "GoalAchievement",
    "GoalStatus",
    "PartyKind",
    "ProgrammeType",
    "ReferralKind",
    "ReferralStatus",
    "StayStatus",
    "TeamRole",
]


class ProgrammeType(StrEnum):
    """The kind of case management a case is enrolled in."""

    HEALTH_CARE = "health-care"
    SOCIAL_WORK = "social-work"
    REHABILITATION = "rehabilitation"
    CHILD_PROTECTION = "child-protection"
    BEHAVIOURAL_HEALTH = "behavioural-health"


class CaseStatus(StrEnum):
    """Where a case stands: referred in, waiting, being worked, paused, closed."""

    REFERRED = "referred"
    WAITLIST = "waitlist"
    ACTIVE = "active"
    ON_HOLD = "on-hold"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    ENTERED_IN_ERROR = "entered-in-error"


class EligibilityReason(StrEnum):
    """Why a person was identified as someone case management would help."""

    FREQUENT_ADMISSIONS = "frequent-admissions"
    READMISSION = "readmission"
    FREQUENT_ED_VISITS = "frequent-ed-visits"
    MULTIPLE_COMORBIDITIES = "multiple-comorbidities"
    COMPLEX_CONDITION = "complex-condition"
    DISABILITY = "disability"
    HOMELESSNESS = "homelessness"
    UNEMPLOYMENT = "unemployment"
    SUBSTANCE_USE = "substance-use"
    FRAILTY = "frailty"
    CHILD_AT_RISK = "child-at-risk"
    SOCIAL_NEEDS = "social-needs"
    OLDER_ADULT = "older-adult"


class Acuity(StrEnum):
    """How intensive the case management must be (drives contact frequency)."""

    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    INTENSIVE = "intensive"


class AssessmentDomain(StrEnum):
    """The area of life an assessment finding belongs to."""

    PHYSICAL = "physical"
    PSYCHOLOGICAL = "psychological"
    SOCIAL = "social"
    FUNCTIONAL = "functional"
    FINANCIAL = "financial"


class GoalStatus(StrEnum):
    """Life cycle of a goal (FHIR Goal.lifecycleStatus, same words)."""

    PROPOSED = "proposed"
    PLANNED = "planned"
    ACCEPTED = "accepted"
    ACTIVE = "active"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class GoalAchievement(StrEnum):
    """Progress towards a goal (FHIR goal-achievement, same words)."""

    IN_PROGRESS = "in-progress"
    IMPROVING = "improving"
    WORSENING = "worsening"
    NO_CHANGE = "no-change"
    ACHIEVED = "achieved"
    SUSTAINING = "sustaining"
    NOT_ACHIEVED = "not-achieved"
    NO_PROGRESS = "no-progress"
    NOT_ATTAINABLE = "not-attainable"


class ReferralKind(StrEnum):
    """What a referral or intervention asks for."""

    SPECIALIST = "specialist"
    HOME_HEALTH = "home-health"
    SKILLED_NURSING = "skilled-nursing"
    REHABILITATION = "rehabilitation"
    BEHAVIOURAL_HEALTH = "behavioural-health"
    SOCIAL_SERVICES = "social-services"
    HOUSING = "housing"
    FOOD = "food"
    TRANSPORT = "transport"
    EDUCATION = "education"
    FOLLOW_UP = "follow-up"


class ReferralStatus(StrEnum):
    """Life cycle of a referral: requested → accepted / rejected → in progress → completed / cancelled."""

    DRAFT = "draft"
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class TeamRole(StrEnum):
    """The part a person or organisation plays in the care team."""

    CASE_MANAGER = "case-manager"
    PATIENT = "patient"
    CAREGIVER = "caregiver"
    PRIMARY_CARE = "primary-care"
    SPECIALIST = "specialist"
    NURSE = "nurse"
    SOCIAL_WORKER = "social-worker"
    HOME_HEALTH_AGENCY = "home-health-agency"
    COMMUNITY_ORGANISATION = "community-organisation"
    PHARMACIST = "pharmacist"
    THERAPIST = "therapist"


class ContactMode(StrEnum):
    """How a monitoring contact happened; face-to-face contact is what intensity is measured by."""

    FACE_TO_FACE = "face-to-face"
    PHONE = "phone"
    VIDEO = "video"
    MESSAGE = "message"


class CareSetting(StrEnum):
    """A place of care a person moves between."""

    ACUTE_HOSPITAL = "acute-hospital"
    EMERGENCY = "emergency"
    SKILLED_NURSING = "skilled-nursing"
    INPATIENT_REHABILITATION = "inpatient-rehabilitation"
    LONG_TERM_CARE = "long-term-care"
    PSYCHIATRIC = "psychiatric"
    HOME_HEALTH = "home-health"
    HOSPICE = "hospice"
    AMBULATORY = "ambulatory"
    HOME = "home"


class DischargeDisposition(StrEnum):
    """Where a person went at the end of a stay (FHIR discharge-disposition, same words)."""

    HOME = "home"
    ALTERNATIVE_HOME = "alt-home"
    OTHER_HEALTHCARE_FACILITY = "other-hcf"
    HOSPICE = "hosp"
    LONG_TERM_CARE = "long"
    LEFT_AGAINST_ADVICE = "aadvice"
    EXPIRED = "exp"
    PSYCHIATRIC = "psy"
    REHABILITATION = "rehab"
    SKILLED_NURSING = "snf"
    OTHER = "oth"


class StayStatus(StrEnum):
    """Whether a stay in a care setting is planned, under way or over."""

    PLANNED = "planned"
    IN_PROGRESS = "in-progress"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class PartyKind(StrEnum):
    """What kind of party a reference names."""

    PATIENT = "patient"
    PRACTITIONER = "practitioner"
    ORGANISATION = "organisation"
    RELATED_PERSON = "related-person"
