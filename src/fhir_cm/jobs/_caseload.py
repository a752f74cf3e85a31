"""The caseload as an answer: what ``GET /api/v1/caseload`` answers and ``fhir-cm caseload`` prints.

Each case's part is ``caseload.caseload_part``'s; which stored cases can count on a day, whose parts a
case manager's caseload takes and how the parts make the answer are written here once, so the API and
the command line answer alike for the same store. Who may ask is the caller's to decide (the API's keys;
the command line holds the store), and where the parts come from too: the API keeps them by revision
across requests, the command line reads them once (:func:`read_caseload`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fhir_cm.caseload import CaseloadPart, ManagerCaseload, caseload_part, group_caseload
from fhir_cm.domain import ID_PATTERN, CaseStatus, Day, ProgrammeType
from fhir_cm.store import CaseFilters, Store, UnreadableCase

from ._stored import every_record

__all__ = ["CaseloadAsk", "CaseloadPage", "caseload_page", "caseload_statuses", "read_caseload"]

_OPEN = (CaseStatus.REFERRED, CaseStatus.WAITLIST, CaseStatus.ACTIVE, CaseStatus.ON_HOLD)


class CaseloadAsk(BaseModel):
    """What is asked of a caseload: the day, the programme, one case manager's. Checked as the API's query
    checks its values, so the command line refuses what the API refuses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    on: Day | None = None
    programme: ProgrammeType | None = None
    case_manager: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = None


class CaseloadPage(BaseModel):
    """Open cases per case manager, as of a day, against the configured limit."""

    on: dt.date
    limit: int
    managers: list[ManagerCaseload]
    unreadable: int = Field(
        default=0,
        description="Stored cases this version cannot read (stored before a rule of the case model), left "
        "out here; `fhir-cm check` names them.",
    )


def caseload_statuses(day: dt.date, today: dt.date, future_tolerance_days: int) -> CaseFilters:
    """The store filter of the cases that can count on ``day``: the open ones, when ``day`` is one no status
    change can be dated after; none otherwise. The stored status is the latest, which may be dated up to
    the tolerance of future days ahead (a case closed on a case manager's today, the server's tomorrow),
    and a past day counts a case closed since."""
    settled = today + dt.timedelta(days=future_tolerance_days)
    return CaseFilters(status=_OPEN) if day >= settled else CaseFilters()


def caseload_page(
    parts: Iterable[CaseloadPart], *, day: dt.date, limit: int, case_manager: str | None = None, unreadable: int = 0
) -> CaseloadPage:
    """The caseload ``parts`` make up on ``day``; with ``case_manager``, that local case manager's only
    (not a namesake's on another server)."""
    if case_manager is not None:
        parts = [p for p in parts if p.case_manager == case_manager and p.case_manager_server is None]
    return CaseloadPage(on=day, limit=limit, managers=group_caseload(parts, limit=limit), unreadable=unreadable)


def read_caseload(
    store: Store, today: dt.date, ask: CaseloadAsk, *, limit: int, future_tolerance_days: int
) -> tuple[CaseloadPage, list[UnreadableCase]]:
    """:func:`caseload_page` over every stored case that can count (read once: the command line's), and
    the cases this version cannot read that could have counted (of the programme and case manager asked,
    judged by their rows)."""
    day, programme, case_manager = ask.on or today, ask.programme, ask.case_manager
    skipped: list[UnreadableCase] = []
    filters = caseload_statuses(day, today, future_tolerance_days)
    filters["programme"] = programme
    records = every_record(store, skipped, **filters)
    parts = [p for r in records if (p := caseload_part(r.case, day, r.dates_as_written)) is not None]
    told = [u for u in skipped if case_manager in (None, u.case_manager_id)]
    page = caseload_page(parts, day=day, limit=limit, case_manager=case_manager, unreadable=len(told))
    return page, told
