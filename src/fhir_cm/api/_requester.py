"""Who asks for a referral: the case manager, or in a case with none the practitioner who made it.

The Gravity referral Task requires its ``requester`` (1..1): the receiving organisation answers and
asks questions there. A case's referrals name the case manager (derived when written), so a referral
made in a case with no case manager — which a supervisor can make — named no one. It now names the
supervisor's practitioner; a key that names none must give ``requester`` in the body (a practitioner
or an organisation, e.g. the case-management unit), else the referral is a 409. A case managed from
another server (an outside case manager) is the same: its manager asked for nothing made here.
"""

from __future__ import annotations

from fhir_cm.domain import Case, Party, PartyKind, Referral

from ._auth import Principal
from ._problems import ConflictProblem

__all__ = ["with_requester", "with_requesters"]


def with_requester(principal: Principal, case: Case, referral: Referral) -> Referral:
    """``referral`` with the requester the case's FHIR will name: none of its own when the case manager
    asks (it follows a hand-over), else the one given or the caller's practitioner."""
    requester = referral.requester
    if requester is not None and requester == case.case_manager:
        requester = None  # the case manager's: said by the case, not the referral
    elif requester is None and (case.case_manager is None or case.case_manager.outside):
        # An outside case manager (another server's practitioner) asks for nothing made here.
        if principal.practitioner_id is None:
            raise ConflictProblem(
                f"case {case.id} has no case manager to ask for referral {referral.id}, and this key names no "
                "practitioner: give its requester (a practitioner or organisation), or hand the case over first",
                extra={"field": "requester"},
            )
        requester = Party(kind=PartyKind.PRACTITIONER, id=principal.practitioner_id)
    if requester == referral.requester:
        return referral
    return Referral.model_validate({**referral.model_dump(), "requester": requester})


def with_requesters(principal: Principal, case: Case) -> Case:
    """``case`` with each of its referrals given its requester (a case created with its referrals)."""
    referrals = [with_requester(principal, case, r) for r in case.referrals]
    if referrals == case.referrals:
        return case
    return Case.model_validate({**case.model_dump(), "referrals": referrals})
