"""The caseload view: open cases per case manager, contact intensity, and the over-limit warning."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Query

from fhir_cm.caseload import compute_caseload
from fhir_cm.config import Settings
from fhir_cm.domain import ProgrammeType
from fhir_cm.store import ApiRole

from .._casework import audit_reads, visible_cases
from .._deps import CaseWork, get_settings
from .._models import OPEN_STATUSES, CaseloadOut
from .._routing import api_router

__all__ = ["router"]

router = api_router(prefix="/caseload", tags=["caseload and outcomes"])


@router.get("", response_model=CaseloadOut, summary="Caseload per case manager")
def caseload(
    work: CaseWork,
    settings: Annotated[Settings, Depends(get_settings)],
    on: Annotated[dt.date | None, Query(description="Count as of this day; today if left out.")] = None,
    programme: ProgrammeType | None = None,
) -> CaseloadOut:
    """Open cases per case manager with days since the last face-to-face contact, flagged above the limit.

    A supervisor sees every case manager of their programme; a case manager sees their own caseload.
    The limit is ``FHIR_CM_CASELOAD_LIMIT`` (20 by default).
    """
    day = on or work.today
    cases = visible_cases(work, status=OPEN_STATUSES, programme=programme)
    if work.principal.role is ApiRole.CASE_MANAGER:
        cases = [c for c in cases if c.case_manager is not None and c.case_manager.id == work.principal.practitioner_id]
    audit_reads(work.store, work.principal, (c.id for c in cases), action="caseload", request_id=work.request_id)
    return CaseloadOut(on=day, limit=settings.caseload_limit,
                       managers=compute_caseload(cases, on=day, limit=settings.caseload_limit))
