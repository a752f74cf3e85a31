"""The caseload view: open cases per case manager, contact intensity, and the over-limit warning."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, Query, Response

from fhir_cm.caseload import caseload_part, group_caseload
from fhir_cm.config import Settings
from fhir_cm.domain import Day, ProgrammeType
from fhir_cm.store import ApiRole

from .._answers import json_answer, json_bytes
from .._casework import shown_audited
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
        # The stored status is the latest, which may be dated up to the tolerance of future days ahead
        # (a case closed on a case manager's today, the server's tomorrow): only on a day no status
        # change can be dated after does a stored closed status mean closed then.
        settled = work.today + dt.timedelta(days=settings.future_tolerance_days)
        filters: dict[str, Any] = {"status": OPEN_STATUSES} if day >= settled else {}
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
        if p.role is ApiRole.CASE_MANAGER:
            parts = [
                part
                for part in parts
                if part.case_manager == p.practitioner_id
                and part.case_manager_server is None  # theirs, not a namesake's
            ]
        out = CaseloadOut(
            on=day,
            limit=settings.caseload_limit,
            managers=group_caseload(parts, limit=settings.caseload_limit),
            unreadable=len(unreadable),
        )
        return json_bytes(out), [part.intensity.case_id for part in parts]

    return json_answer(shown_audited(work, key, compute, action="caseload"))
