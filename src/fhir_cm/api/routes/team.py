"""The care team: members join with a start and leave with an end, and the history stays."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Query, Response, status

from fhir_cm.domain import Case, Day, PartyKind, TeamMember, TeamRole

from .._casework import add_entity, listed, patched, respond, update_entity
from .._deps import CaseWork
from .._problems import ConflictProblem
from .._routing import api_router
from .cases import CaseId
from .plan import EntityPath

__all__ = ["router"]

router = api_router(prefix="/cases/{case_id}/team", tags=["care team"])


@router.get("", response_model=list[TeamMember], summary="List the care team")
def list_team(
    case_id: CaseId,
    work: CaseWork,
    response: Response,
    current: Annotated[bool, Query(description="Only members on the team today.")] = False,
) -> list[TeamMember]:
    """Every membership, past ones included unless ``current``."""
    team: list[TeamMember] = listed(work, case_id, "team", response)
    if current:
        team = [
            m for m in team if (m.start is None or m.start <= work.today) and (m.end is None or m.end >= work.today)
        ]
    return team


def _overlap(a: TeamMember, b: TeamMember) -> bool:
    """Whether two memberships share a day (an end is the last day on the team)."""
    return (a.start or dt.date.min) <= (b.end or dt.date.max) and (b.start or dt.date.min) <= (a.end or dt.date.max)


def _managing(member: TeamMember) -> bool:
    """A practitioner in the case-manager role: the record of who managed the case when (``Case.hand_over``),
    which the caseload and outcomes read."""
    return member.role is TeamRole.CASE_MANAGER and member.party.kind is PartyKind.PRACTITIONER


def _hand_over_instead(case: Case) -> ConflictProblem:
    return ConflictProblem(
        f"who manages case {case.id} is changed by handing it over (a supervisor's PATCH /api/v1/cases/{case.id} "
        "with case_manager), which keeps the team's case-manager memberships in step"
    )


def _may_join(case: Case, member: TeamMember) -> None:
    """Refuse (409) a member already on the team in that role at the time, and a case-manager membership of
    someone other than the case's case manager (it would move the case to their caseload: a hand-over)."""
    for m in case.team:
        if m.party.kind is member.party.kind and m.party.id == member.party.id and m.role is member.role:
            if _overlap(m, member):
                raise ConflictProblem(
                    f"{member.party.id} is already on the team as {member.role} then (team member {m.id})",
                    extra={"member": m.id},
                )
    if _managing(member) and (case.case_manager is None or member.party.id != case.case_manager.id):
        raise _hand_over_instead(case)


def _may_leave(case: Case, member: TeamMember) -> None:
    """Refuse (409) ending the case manager's own case-manager membership: from then on the caseload would
    name no one for the case, which still names them."""
    if (
        _managing(member)
        and member.end is None
        and case.case_manager is not None
        and member.party.id == case.case_manager.id
    ):
        raise _hand_over_instead(case)


@router.post("", response_model=TeamMember, status_code=status.HTTP_201_CREATED, summary="Add a team member")
def add_member(case_id: CaseId, body: TeamMember, work: CaseWork, response: Response) -> TeamMember:
    """A person or organisation joins the care team in a role (``start`` defaults to today).

    One already on the team in that role at the time is a 409 naming the membership (``member``); so is
    a practitioner in the case-manager role other than the case's own: a supervisor hands the case over.
    """
    member = patched(body, {"start": body.start or work.today}, "start")
    return respond(add_entity(work, case_id, "team", member, "team member", check=_may_join), response)


@router.delete("/{member_id}", response_model=TeamMember, summary="Remove a team member")
def remove_member(
    case_id: CaseId,
    member_id: EntityPath,
    work: CaseWork,
    response: Response,
    on: Annotated[Day | None, Query(description="Last day on the team; today if left out.")] = None,
) -> TeamMember:
    """Ends the membership (sets ``end``) rather than deleting it: the team's history is part of the record.

    The case manager's own case-manager membership ends when a supervisor hands the case over (409 here).
    """
    end = on or work.today

    def leave(member: TeamMember) -> TeamMember:
        if member.end is not None:
            raise ConflictProblem(f"team member {member.id} already left on {member.end}")
        return patched(member, {"end": end}, "on")

    edited = update_entity(work, case_id, "team", member_id, "team member", leave, action="remove", check=_may_leave)
    return respond(edited, response)
