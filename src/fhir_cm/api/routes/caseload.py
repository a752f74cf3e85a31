"""The caseload view: open cases per case manager, contact intensity, and the over-limit warning."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Annotated

from fastapi import Depends, Query, Response

from fhir_cm.caseload import CaseloadPart, caseload_part
from fhir_cm.config import Settings
from fhir_cm.domain import Day, ProgrammeType
from fhir_cm.jobs import CaseloadPage, caseload_page, caseload_statuses
from fhir_cm.store import ApiRole, Store, UnreadableCase

from .._access import programme_scope
from .._answers import json_answer, json_bytes
from .._casework import shown_audited, views
from .._deps import CaseWork, get_settings
from .._parts import CaseParts, Shared, seen, seen_unreadable
from .._routing import api_router

__all__ = ["day_caseload_parts", "router"]

router = api_router(prefix="/caseload", tags=["caseload and outcomes"])


def day_caseload_parts(
    parts: CaseParts,
    store: Store,
    day: dt.date,
    today: dt.date,
    future_tolerance_days: int,
    programme: ProgrammeType | None = None,
) -> tuple[Sequence[Shared[CaseloadPart]], Sequence[UnreadableCase]]:
    """Every case's part of the caseload on ``day`` — of ``programme`` at least, if one is given — kept by
    revision in one view for every caller of ``today`` asking for that day (``CaseParts.for_everyone``),
    and the cases this version cannot read. Each caller takes the parts of
    the cases they may see; the app's start-up computes today's, so that the first caller of a new
    process does not wait for every case to be gone through (10,000 took about a second), and a
    supervisor's and a case manager's caseload, and two supervisors', go through the cases once
    between them."""
    statuses = caseload_statuses(day, today, future_tolerance_days).get("status")
    key = ("caseload", day, today, future_tolerance_days)
    return parts.for_everyone(
        store,
        today,
        key,
        lambda record: caseload_part(record.case, day, record.dates_as_written),
        programme=programme,
        status=statuses,
    )


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

    def compute() -> tuple[bytes, Mapping[str, object]]:
        # A programme asked for (or a supervisor's only one): its cases alone gone through, if need be.
        scope = programme_scope(p)
        of = programme or scope
        every, unreadable = (
            day_caseload_parts(work.parts, work.store, day, work.today, settings.future_tolerance_days, of)
            if scope in (None, of)
            else ([], [])  # another programme than the supervisor's: none of its cases is theirs to see
        )

        def made() -> tuple[bytes, Mapping[str, object]]:
            parts, told = seen(p, every, programme), seen_unreadable(p, unreadable, programme)
            own = p.practitioner_id if p.role is ApiRole.CASE_MANAGER else None
            out = caseload_page(parts, day=day, limit=settings.caseload_limit, case_manager=own, unreadable=len(told))
            # What each case shows: its figures, and under whom (a case moved to another manager is shown anew).
            shown = {c.case_id: (m.case_manager, m.case_manager_server, c) for m in out.managers for c in m.cases}
            return json_bytes(out), shown

        # The same parts as last time (a save changed none): the same answer, not made again over every case.
        return views(work).from_parts(work.store, key, (every, unreadable), made)

    return json_answer(shown_audited(work, key, compute, action="caseload"))
