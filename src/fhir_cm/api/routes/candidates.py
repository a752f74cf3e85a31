"""Case-management candidates from population screening, for supervisors: list them, enrol them.

The list is the last ranking of ``fhir-cm identify`` (or the worker) against the configured server:
each candidate with the score and the reasons that made them one. Enrolling turns chosen candidates
(or the top N) into ``referred`` cases with their eligibility reasons, queued for push — the same job
as ``fhir-cm identify --enrol N`` — each case audited (``enrol``) in the transaction that makes it.
"""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import Body, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fhir_cm import jobs
from fhir_cm.config import Settings
from fhir_cm.domain import ProgrammeType
from fhir_cm.identify import EnrolReport
from fhir_cm.store import CandidateRecord, Store, count_candidates, list_candidates, record_audit

from .._access import check_programme, programme_scope
from .._deps import Supervisor, Today, get_settings, get_store
from .._models import EntityId
from .._problems import ConflictProblem
from .._routing import api_router

__all__ = ["router"]

router = api_router(prefix="/candidates", tags=["identification"])


class CandidatePage(BaseModel):
    """One page of candidates, highest score first."""

    total: int = Field(description="Candidates with at least min_score and in no open case, on every page.")
    limit: int
    offset: int
    candidates: list[CandidateRecord]


class EnrolIn(BaseModel):
    """Whom to enrol: named patients, the top N not yet enrolled, or both."""

    model_config = ConfigDict(extra="forbid")

    patients: list[EntityId] = Field(default_factory=list, max_length=500)
    top: StrictInt = Field(default=0, ge=0, le=500)
    programme: ProgrammeType | None = Field(
        default=None,
        description="The cases' programme; left out: the supervisor key's programme, else health-care. "
        "A supervisor limited to one programme enrols into that one only (403).",
    )


def _server(settings: Settings) -> str:
    if not settings.fhir_base:
        raise ConflictProblem("no FHIR server is configured: set FHIR_CM_FHIR_BASE and restart the service")
    return settings.fhir_base


@router.get("", response_model=CandidatePage, summary="List case-management candidates")
def candidates(
    _principal: Supervisor,
    store: Annotated[Store, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    min_score: Annotated[int, Query(ge=0, le=1000, description="Only candidates scoring at least this.")] = 0,
) -> CandidatePage:
    """The candidates of the last screening of the configured server, by score, then patient id —
    those in no open case now: one who joined a case since the screening (made by hand, pulled,
    enrolled) is no longer offered, rather than listed until the next screening and refused."""
    server = _server(settings)
    with store.session(read_only=True) as s:
        page = list_candidates(s, server, limit=limit, offset=offset, min_score=min_score, free_only=True)
        total = count_candidates(s, server, min_score=min_score, free_only=True)
    return CandidatePage(total=total, limit=limit, offset=offset, candidates=page)


@router.post(
    "/enrol",
    response_model=EnrolReport,
    status_code=status.HTTP_200_OK,
    summary="Enrol candidates as referred cases",
)
async def enrol_candidates(
    request: Request,
    principal: Supervisor,
    store: Annotated[Store, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
    today: Today,
    body: Annotated[EnrolIn, Body()],
) -> EnrolReport:
    """Each chosen candidate becomes a case in status referred, with its eligibility reasons, queued for
    push; a patient already in an open case, or not a candidate, is listed as skipped with the reason."""
    _server(settings)
    programme = body.programme or programme_scope(principal) or ProgrammeType.HEALTH_CARE
    check_programme(principal, programme)
    request_id = getattr(request.state, "request_id", None)

    def audit(session: Session, report: EnrolReport) -> None:
        made = [e.case_id for e in report.enrolled]
        record_audit(session, principal=principal.id, action="enrol", case_ids=made, request_id=request_id)

    return await run_in_threadpool(
        functools.partial(
            jobs.enrol,
            store,
            settings,
            patient_ids=body.patients,
            top=body.top,
            programme=programme,
            as_of=today,
            then=audit,
        )
    )
