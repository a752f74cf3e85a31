"""Assessment and plan: a case's needs (findings) and goals (incl. self-care goals, progress)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response, status

from fhir_cm.domain import Goal, Need

from .._casework import (
    Edited,
    add_entity,
    listed,
    patched,
    respond,
    sent_fields,
    update_entity,
)
from .._deps import CaseWork
from .._models import GoalUpdate, NeedUpdate
from .._routing import api_router
from .cases import CaseId

__all__ = ["EntityPath", "router"]

router = api_router(prefix="/cases/{case_id}", tags=["assessment and plan"])

EntityPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="The entity's id within the case.")]


@router.get("/needs", response_model=list[Need], summary="List a case's needs")
def list_needs(case_id: CaseId, work: CaseWork, response: Response) -> list[Need]:
    """The assessment findings of the case."""
    return listed(work, case_id, "needs", response)


@router.post("/needs", response_model=Need, status_code=status.HTTP_201_CREATED, summary="Record a need")
def add_need(case_id: CaseId, body: Need, work: CaseWork, response: Response) -> Need:
    """Record an assessment finding (physical, psychological, social, functional, financial)."""
    return respond(add_entity(work, case_id, "needs", body, "need"), response)


@router.patch("/needs/{need_id}", response_model=Need, summary="Change a need")
def update_need(case_id: CaseId, need_id: EntityPath, body: NeedUpdate, work: CaseWork, response: Response) -> Need:
    """Change a finding, its strengths, or mark it resolved."""
    changes = body.model_dump(exclude_unset=True)
    edited: Edited[Need] = update_entity(
        work,
        case_id,
        "needs",
        need_id,
        "need",
        lambda n: patched(n, changes, "needs"),
        what_changed=sent_fields(changes),
    )
    return respond(edited, response)


@router.get("/goals", response_model=list[Goal], summary="List a case's goals")
def list_goals(case_id: CaseId, work: CaseWork, response: Response) -> list[Goal]:
    """The goals of the case's plan, self-care goals included."""
    return listed(work, case_id, "goals", response)


@router.post("/goals", response_model=Goal, status_code=status.HTTP_201_CREATED, summary="Add a goal")
def add_goal(case_id: CaseId, body: Goal, work: CaseWork, response: Response) -> Goal:
    """Add a goal to the plan (``self_care: true`` for one the patient set)."""
    return respond(add_entity(work, case_id, "goals", body, "goal"), response)


@router.patch("/goals/{goal_id}", response_model=Goal, summary="Record progress on a goal")
def update_goal(case_id: CaseId, goal_id: EntityPath, body: GoalUpdate, work: CaseWork, response: Response) -> Goal:
    """Progress and achievement (``achievement``), status, dates or measure of a goal."""
    changes = body.model_dump(exclude_unset=True)
    edited: Edited[Goal] = update_entity(
        work,
        case_id,
        "goals",
        goal_id,
        "goal",
        lambda g: patched(g, changes, "goals"),
        what_changed=sent_fields(changes),
    )
    return respond(edited, response)
