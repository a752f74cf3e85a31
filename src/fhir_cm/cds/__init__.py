"""A CDS Hooks 2.0 service: case management where the clinician is, inside the EHR.

Discovery lists the services of ``mappings/cds-hooks.json``; ``patient-view`` says whether a patient
is eligible for case management (the rules of ``fhir_cm.identify``, on the prefetched data) or in
an open case (with the manager and the next follow-up), ``encounter-discharge`` that a transition
plan is needed (``sync.transition_plan``, the rule the tracker's discharges run too); feedback is
recorded for the cards it issued (feedback naming another is refused) and an accepted referral
suggestion makes the referred case. Every call is authenticated by the EHR's signed JWT (``_auth``).
"""

from ._auth import ALGORITHMS, CdsUnauthorized, IssuerKeys, JtiLedger, VerifiedCall, parse_issuers, verify_call
from ._cards import UnknownCard, answer, suggestion_uuid, take_feedback
from ._models import (
    Card,
    CardsResponse,
    FeedbackEntry,
    FeedbackRequest,
    HookRequest,
    Service,
    Services,
)
from ._services import CdsConfigError, CdsDataUnavailable, CdsRequestError, catalogue, service

__all__ = [
    "ALGORITHMS",
    "Card",
    "CardsResponse",
    "CdsConfigError",
    "CdsDataUnavailable",
    "CdsRequestError",
    "CdsUnauthorized",
    "FeedbackEntry",
    "FeedbackRequest",
    "HookRequest",
    "IssuerKeys",
    "JtiLedger",
    "Service",
    "Services",
    "UnknownCard",
    "VerifiedCall",
    "answer",
    "catalogue",
    "parse_issuers",
    "service",
    "suggestion_uuid",
    "take_feedback",
    "verify_call",
]
