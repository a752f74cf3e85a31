"""The care team: members join with a start and leave with an end, and the history stays."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response, status

from fhir_cm.domain import Day, TeamMember

from .._casework import add_entity, listed, patched, respond, update_entity
from .._deps import CaseWork
from .._problems import ConflictProblem
from .._routing import api_router
from .._team import may_join, may_leave
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


@router.post("", response_model=TeamMember, status_code=status.HTTP_201_CREATED, summary="Add a team member")
def add_member(case_id: CaseId, body: TeamMember, work: CaseWork, response: Response) -> TeamMember:
    """A person or organisation joins the care team in a role (``start`` defaults to today).

    One already on the team in that role at the time is a 409 naming the membership (``member``); so is
    a practitioner in the case-manager role other than the case's own: a supervisor hands the case over.
    """
    member = patched(body, {"start": body.start or work.today}, "start")
    return respond(add_entity(work, case_id, "team", member, "team member", check=may_join), response)


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

    edited = update_entity(work, case_id, "team", member_id, "team member", leave, action="remove", check=may_leave)
    return respond(edited, response)
