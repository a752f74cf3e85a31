"""The worklist: what is due from a case manager today, across their open cases (``fhir_cm.worklist``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Annotated

from fastapi import Depends, Query, Response

from fhir_cm.config import Settings
from fhir_cm.domain import Day, ProgrammeType
from fhir_cm.jobs import MAX_PAGE, WorklistAsk, WorklistPage, worklist_page
from fhir_cm.store import ApiRole, Store, UnreadableCase, resources_saved_at
from fhir_cm.worklist import ItemKind, WorklistPart, load_worklist_rules, worklist_part

from .._access import may_see_unreadable, programme_scope
from .._answers import json_answer, json_bytes
from .._casework import shown_audited, views
from .._deps import CaseWork, get_settings
from .._models import EntityId
from .._parts import CaseParts
from .._problems import ForbiddenProblem
from .._routing import api_router

__all__ = ["day_worklist_parts", "router"]

router = api_router(prefix="/worklist", tags=["caseload and outcomes"])


def day_worklist_parts(
    parts: CaseParts, store: Store, today: dt.date
) -> tuple[Sequence[WorklistPart], Sequence[UnreadableCase]]:
    """Every case's worklist items on ``today`` (kept by revision in one view for every caller of the
    day), and the cases this version cannot read. The app's start-up computes them too, so that the
    first case manager of a new process does not wait for every case to be gone through."""
    rules = load_worklist_rules()
    return parts.every_part(store, ("worklist", today), lambda record: worklist_part(record.case, today, rules))


@router.get("", response_model=WorklistPage, summary="What is due from a case manager")
def worklist(
    work: CaseWork,
    settings: Annotated[Settings, Depends(get_settings)],
    kind: Annotated[list[ItemKind] | None, Query(description="Only items of this kind; repeat for several.")] = None,
    overdue: Annotated[bool, Query(description="Only items past their due day.")] = False,
    due_before: Annotated[
        Day | None, Query(description="Only items due before this day (YYYY-MM-DD; the day itself not included).")
    ] = None,
    case_manager: Annotated[
        EntityId | None,
        Query(
            description="Whose worklist (a practitioner id): a supervisor's choice; a case manager may name only "
            "themself. Left out: the calling case manager's own, or every case manager's for a supervisor."
        ),
    ] = None,
    programme: ProgrammeType | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Response:
    """Referrals due or waiting for a reply, follow-ups after a move between care settings, goals past
    their due day and not attained, and cases not seen face to face for too long, earliest due first
    (the rules: ``mappings/worklist-rules.json``). Each item names its case, what is due, the day, whether
    it is overdue, the referral or goal it is about, and the dates its source wrote as a year or a month
    as written. A case counts for the case manager in charge of it today; a supervisor sees the cases of
    their programme(s).
    """
    p = work.principal
    if p.role is ApiRole.CASE_MANAGER:
        if case_manager not in (None, p.practitioner_id):
            raise ForbiddenProblem("a case manager's key reads that case manager's own worklist only")
        whose: str | None = p.practitioner_id
    else:
        whose = case_manager
    today = work.today
    scope = programme_scope(p)
    # A supervisor limited to one programme asking for another: none of its items (as the caseload answers).
    elsewhere = scope is not None and programme not in (None, scope)
    wanted = programme or scope
    kinds = frozenset(kind) if kind else None
    # Each case's items are kept by revision in one view for every caller of the day (``every_part``): whose
    # the case is, the part says. The page made of them is kept per caller until a case or a stored copy
    # changes (a copy brings the dates as written).
    with work.store.lookup() as session:
        copies_at = resources_saved_at(session)
    asked = (whose, wanted, elsewhere, kinds, overdue, due_before, limit, offset)
    key = ("worklist", p.role, p.practitioner_id, p.programme, today, copies_at, asked)

    def compute() -> tuple[bytes, Mapping[str, object]]:
        parts, unreadable = day_worklist_parts(work.parts, work.store, today)
        if elsewhere:
            parts, unreadable = [], []
        ask = WorklistAsk(
            case_manager=whose,
            programme=wanted,
            kinds=kinds,
            overdue=overdue,
            due_before=due_before,
            limit=limit,
            offset=offset,
        )

        def made() -> tuple[bytes, Mapping[str, object]]:
            seen = [u for u in unreadable if may_see_unreadable(p, u)]
            page, _ = worklist_page(work.store, today, parts, seen, ask)
            shown: dict[str, list[object]] = {}  # what the page shows of each case: its items
            for item in page.items:
                shown.setdefault(item.case_id, []).append(item)
            return json_bytes(page), shown

        # The same parts as last time (a save changed no case's items): the same page, not made again.
        return views(work).from_parts(work.store, key, (parts, unreadable), made)

    return json_answer(shown_audited(work, key, compute, action="worklist"))
