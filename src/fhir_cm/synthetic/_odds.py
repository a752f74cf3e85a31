"""How journeys go: the odds and shapes the synthetic journeys are drawn from.

Programme mix and ages, how often monitoring contacts happen and how many are face to face by acuity,
how referrals move through their life cycle and where they end, who joins the care team. Kept apart
from the journey builder so the figures can be read (and tuned) in one place.
"""

from __future__ import annotations

from fhir_cm.domain import Acuity, CareSetting, ContactMode, ProgrammeType, ReferralKind, ReferralStatus, TeamRole

from . import _catalogue as cat

__all__ = [
    "ACTIVE_REFERRAL",
    "AGE_RANGE",
    "CAREGIVERS",
    "CONTACT_INTERVAL",
    "FACE_TO_FACE_SHARE",
    "FOLLOW_UP_WITHIN_DAYS",
    "FRAILTY_AGE",
    "MEMBER_ROLE",
    "OTHER_MODES",
    "POST_ACUTE",
    "PROGRAMME_WEIGHTS",
    "REFERRAL_OUTCOMES",
    "REFERRAL_PATHS",
]

P = ProgrammeType
RS = ReferralStatus

PROGRAMME_WEIGHTS = {
    P.HEALTH_CARE: 32,
    P.SOCIAL_WORK: 20,
    P.REHABILITATION: 16,
    P.CHILD_PROTECTION: 12,
    P.BEHAVIOURAL_HEALTH: 20,
}
AGE_RANGE = {
    P.HEALTH_CARE: (55, 94),
    P.SOCIAL_WORK: (19, 66),
    P.REHABILITATION: (24, 90),
    P.CHILD_PROTECTION: (1, 16),
    P.BEHAVIOURAL_HEALTH: (18, 70),
}
FRAILTY_AGE = 70

#: Days between monitoring contacts, and the share of them that are face-to-face, by acuity.
CONTACT_INTERVAL = {Acuity.INTENSIVE: (3, 5), Acuity.HIGH: (6, 9), Acuity.MODERATE: (12, 17), Acuity.LOW: (25, 35)}
FACE_TO_FACE_SHARE = {Acuity.INTENSIVE: 0.55, Acuity.HIGH: 0.4, Acuity.MODERATE: 0.25, Acuity.LOW: 0.15}
OTHER_MODES = {ContactMode.PHONE: 5, ContactMode.MESSAGE: 3, ContactMode.VIDEO: 2}

#: A discharge home asks for a follow-up within this many days.
FOLLOW_UP_WITHIN_DAYS = 7

#: How a referral walks its life cycle to reach a status (``move_referral`` checks every step).
REFERRAL_PATHS: dict[RS, tuple[RS, ...]] = {
    RS.DRAFT: (),
    RS.REQUESTED: (),
    RS.ACCEPTED: (RS.ACCEPTED,),
    RS.REJECTED: (RS.REJECTED,),
    RS.IN_PROGRESS: (RS.ACCEPTED, RS.IN_PROGRESS),
    RS.ON_HOLD: (RS.ACCEPTED, RS.IN_PROGRESS, RS.ON_HOLD),
    RS.COMPLETED: (RS.ACCEPTED, RS.IN_PROGRESS, RS.COMPLETED),
    RS.CANCELLED: (RS.ACCEPTED, RS.CANCELLED),
    RS.FAILED: (RS.ACCEPTED, RS.IN_PROGRESS, RS.FAILED),
}
#: Where referrals end up, by how long they have had to progress (open cases) or for closed cases.
REFERRAL_OUTCOMES = {
    "new": {RS.DRAFT: 10, RS.REQUESTED: 45, RS.ACCEPTED: 25, RS.REJECTED: 10, RS.CANCELLED: 10},
    "recent": {
        RS.DRAFT: 3, RS.REQUESTED: 8, RS.ACCEPTED: 12, RS.IN_PROGRESS: 30, RS.ON_HOLD: 8,
        RS.COMPLETED: 20, RS.REJECTED: 10, RS.CANCELLED: 7, RS.FAILED: 5,
    },
    "old": {RS.IN_PROGRESS: 20, RS.ON_HOLD: 5, RS.COMPLETED: 50, RS.REJECTED: 10, RS.CANCELLED: 10, RS.FAILED: 5},
    "closed": {RS.COMPLETED: 62, RS.REJECTED: 13, RS.CANCELLED: 15, RS.FAILED: 10},
}  # fmt: skip
ACTIVE_REFERRAL = {RS.ACCEPTED, RS.IN_PROGRESS, RS.ON_HOLD, RS.COMPLETED, RS.FAILED}
MEMBER_ROLE = {
    cat.SPECIALIST: TeamRole.SPECIALIST,
    cat.HOME_HEALTH: TeamRole.HOME_HEALTH_AGENCY,
    cat.THERAPY: TeamRole.THERAPIST,
}  # every other organisation joins as a community organisation; primary care is on the team already
CAREGIVERS = {P.HEALTH_CARE: 0.55, P.REHABILITATION: 0.6, P.CHILD_PROTECTION: 1.0, P.BEHAVIOURAL_HEALTH: 0.3}

POST_ACUTE = {
    CareSetting.SKILLED_NURSING: (ReferralKind.SKILLED_NURSING, "Skilled nursing placement for post-acute care"),
    CareSetting.INPATIENT_REHABILITATION: (ReferralKind.REHABILITATION, "Inpatient rehabilitation admission"),
    CareSetting.HOME_HEALTH: (ReferralKind.HOME_HEALTH, "Home health nursing and therapy after discharge"),
}
