"""The caseload view: open cases per case manager, contact intensity, and the over-limit warning."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query

from fhir_cm.caseload import compute_caseload
from fhir_cm.config import Settings
from fhir_cm.domain import Day, ProgrammeType, case_as_of
from fhir_cm.store import ApiRole

from .._casework import audit_reads, visible_cases, views
from .._deps import CaseWork, get_settings
from .._models import OPEN_STATUSES, CaseloadOut
from .._routing import api_router

__all__ = ["router"]

router = api_router(prefix="/caseload", tags=["caseload and outcomes"])


@router.get("", response_model=CaseloadOut, summary="Caseload per case manager")
def caseload(
    work: CaseWork,
    settings: Annotated[Settings, Depends(get_settings)],
    on: Annotated[
        Day | None,
        Query(
            description="The caseload as it was on this day (YYYY-MM-DD): statuses, case managers and "
            "contacts as of then; today if left out."
        ),
    ] = None,
    programme: ProgrammeType | None = None,
) -> CaseloadOut:
    """Open cases per case manager with days since the last face-to-face contact, flagged above the limit.

    A supervisor sees every case manager of their programme; a case manager sees their own caseload.
    The limit is ``FHIR_CM_CASELOAD_LIMIT`` (20 by default). A past day counts each case as it was
    then (a case closed since was open, one opened since is left out).
    """
    day = on or work.today

    def compute() -> tuple[CaseloadOut, list[str]]:
        # A case closed today may have been open on a past day: only from today on do statuses filter.
        filters: dict[str, Any] = {"status": OPEN_STATUSES} if day >= work.today else {}
        past = [as_of for c in visible_cases(work, programme=programme, **filters) if (as_of := case_as_of(c, day))]
        cases = [c for c in past if c.is_open]
        if work.principal.role is ApiRole.CASE_MANAGER:
            cases = [
                c for c in cases if c.case_manager is not None and c.case_manager.id == work.principal.practitioner_id
            ]
        out = CaseloadOut(
            on=day,
            limit=settings.caseload_limit,
            managers=compute_caseload(cases, on=day, limit=settings.caseload_limit),
        )
        return out, [c.id for c in cases]

    p = work.principal
    key = ("caseload", p.role, p.practitioner_id, p.programme, programme, day, work.today, settings.caseload_limit)
    out, seen = views(work).get(work.store, key, compute)
    audit_reads(work.store, work.principal, seen, action="caseload", request_id=work.request_id)
    return out
