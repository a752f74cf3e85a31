"""The case-management model, in the case manager's words. Knows nothing of FHIR or HTTP."""

from ._case import Case
from ._models import Contact, Goal, Need, Party, Period, Referral, StatusChange, Stay, TeamMember, new_id
from ._referrals import ReferralTransitionError, allowed_referral_moves, move_referral
from ._transitions import READMISSION_WINDOW_DAYS, Transition, derive_transitions, disposition_setting
from ._types import (
    Acuity,
    AssessmentDomain,
    CareSetting,
    CaseStatus,
    ContactMode,
    DischargeDisposition,
    EligibilityReason,
    GoalAchievement,
    GoalStatus,
    PartyKind,
    ProgrammeType,
    ReferralKind,
    ReferralStatus,
    StayStatus,
    TeamRole,
)

__all__ = [
    "READMISSION_WINDOW_DAYS",
    "Acuity",
    "AssessmentDomain",
    "CareSetting",
    "Case",
    "CaseStatus",
    "Contact",
    "ContactMode",
    "DischargeDisposition",
    "EligibilityReason",
    "Goal",
    "GoalAchievement",
    "GoalStatus",
    "Need",
    "Party",
    "PartyKind",
    "Period",
    "ProgrammeType",
    "Referral",
    "ReferralKind",
    "ReferralStatus",
    "ReferralTransitionError",
    "StatusChange",
    "Stay",
    "StayStatus",
    "TeamMember",
    "TeamRole",
    "Transition",
    "allowed_referral_moves",
    "derive_transitions",
    "disposition_setting",
    "move_referral",
    "new_id",
]
