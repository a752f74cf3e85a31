"""The caseload view: open cases per case manager, contact intensity, and the over-limit warning."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Response

from fhir_cm.caseload import caseload_part
from fhir_cm.config import Settings
from fhir_cm.domain import Day, ProgrammeType
from fhir_cm.jobs import CaseloadPage, caseload_page, caseload_statuses
from fhir_cm.store import ApiRole

from .._answers import json_answer, json_bytes
from .._casework import shown_audited
from .._deps import CaseWork, get_settings
from .._routing import api_router

__all__ = ["router"]

router = api_router(prefix="/caseload", tags=["caseload and outcomes"])


@router.get("", response_model=CaseloadPage, summary="Caseload per case manager")
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
) -> Response:
    """Open cases per case manager with days since the last face-to-face contact, flagged above the limit.

    A supervisor sees every case manager of their programme; a case manager sees their own caseload.
    The limit is ``FHIR_CM_CASELOAD_LIMIT`` (20 by default). A past day counts each case as it was
    then (a case closed since was open, one opened since is left out). A next follow-up the hospital
    wrote as due in a month or a year is due by its last day and said as written
    (``next_follow_up_due_as_written``).
    """
    day = on or work.today

    p = work.principal
    key = ("caseload", p.role, p.practitioner_id, p.programme, programme, day, work.today, settings.caseload_limit)

    def compute() -> tuple[bytes, list[str]]:
        filters = caseload_statuses(day, work.today, settings.future_tolerance_days)
        unreadable: list[str] = []
        parts = work.parts.parts(
            work.store,
            p,
            work.today,
            key,
            lambda record: caseload_part(record.case, day, record.dates_as_written),
            unreadable=unreadable,
            programme=programme,
            **filters,
        )
        own = p.practitioner_id if p.role is ApiRole.CASE_MANAGER else None
        out = caseload_page(parts, day=day, limit=settings.caseload_limit, case_manager=own, unreadable=len(unreadable))
        return json_bytes(out), [c.case_id for m in out.managers for c in m.cases]

    return json_answer(shown_audited(work, key, compute, action="caseload"))
