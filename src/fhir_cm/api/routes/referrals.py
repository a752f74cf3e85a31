"""Referrals and interventions, moved along their life cycle by the case manager or supervisor."""

from __future__ import annotations

import functools

from fastapi import Response, status
from pydantic import ValidationError

from fhir_cm.domain import (
    Case,
    CaseStatus,
    Referral,
    ReferralStatus,
    ReferralTransitionError,
    allowed_referral_moves,
    move_referral,
)

from .._casework import add_entity, listed, respond, update_entity
from .._deps import CaseWork
from .._models import ReferralMove
from .._problems import ConflictProblem, FieldError, InvalidInput, field_errors
from .._requester import with_requester
from .._routing import api_router
from .cases import CaseId
from .plan import EntityPath

__all__ = ["router"]

router = api_router(prefix="/cases/{case_id}/referrals", tags=["referrals"])

_STARTS = (ReferralStatus.DRAFT, ReferralStatus.REQUESTED)


@router.get("", response_model=list[Referral], summary="List a case's referrals")
def list_referrals(case_id: CaseId, work: CaseWork, response: Response) -> list[Referral]:
    """The referrals and interventions of the case, each with its status."""
    return listed(work, case_id, "referrals", response)


@router.post("", response_model=Referral, status_code=status.HTTP_201_CREATED, summary="Make a referral")
def add_referral(case_id: CaseId, body: Referral, work: CaseWork, response: Response) -> Referral:
    """A new referral starts as ``draft`` or ``requested``; it moves on through ``/status``. A closed or
    cancelled case takes none (409). Its requester is the case manager; in a case with none, the one given
    as ``requester``, else the caller's practitioner (409 for a key naming none)."""
    if body.status not in _STARTS:
        message = f"a new referral starts as 'draft' or 'requested', not '{body.status}'; move it afterwards"
        raise InvalidInput(message, errors=[FieldError(field="status", message=message)])
    asked = functools.partial(with_requester, work.principal)
    return respond(add_entity(work, case_id, "referrals", body, "referral", check=_case_open, fill=asked), response)


def _case_open(case: Case, referral: Referral) -> None:
    """Refuse (409) a referral made in a case that has ended: it would ask an organisation to work for a
    closed case, which a case is not closed with (see ``cases.change_status``); reopen the case first."""
    if case.status in (CaseStatus.CLOSED, CaseStatus.CANCELLED):
        raise ConflictProblem(f"case {case.id} is {case.status}: reopen it before making a referral")


@router.post("/{referral_id}/status", response_model=Referral, summary="Move a referral along its life cycle")
def move(case_id: CaseId, referral_id: EntityPath, body: ReferralMove, work: CaseWork, response: Response) -> Referral:
    """Requested → accepted / rejected → in progress ↔ on hold → completed / failed; cancellable until done.

    An illegal move is a 409 whose ``allowed`` member lists the moves possible from where it is.
    """

    def step(referral: Referral) -> Referral:
        try:
            return move_referral(referral, body.status, body.reason)
        except ReferralTransitionError as exc:
            allowed = sorted(allowed_referral_moves(referral.status))
            raise ConflictProblem(str(exc), extra={"current": referral.status, "allowed": allowed}) from None
        except ValidationError as exc:  # e.g. a rejection without a reason
            raise InvalidInput("the move is not valid", errors=field_errors(exc.errors(), hint="reason")) from None

    edited = update_entity(
        work, case_id, "referrals", referral_id, "referral", step, action="status", what_changed=body.status
    )
    return respond(edited, response)
