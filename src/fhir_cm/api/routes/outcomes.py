"""Outcome figures per programme and period (definitions in ``fhir_cm.outcomes``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated

from fastapi import Query, Response

from fhir_cm.domain import Case, Day, ProgrammeType
from fhir_cm.outcomes import (
    OutcomeParts,
    combine_outcomes,
    outcome_timeline,
    patients_to_follow,
    readmission_stays,
)
from fhir_cm.store import Store, UnreadableCase, cases_of_patients_with_several

from .._access import check_programme, programme_scope
from .._answers import json_answer, json_bytes
from .._casework import audit_reads, views
from .._deps import CaseWork
from .._models import OutcomesOut
from .._parts import CaseParts, Shared, seen, seen_unreadable
from .._problems import FieldError, InvalidInput
from .._routing import api_router

__all__ = ["period_outcome_parts", "router"]

router = api_router(prefix="/outcomes", tags=["caseload and outcomes"])


def period_outcome_parts(
    parts: CaseParts,
    store: Store,
    start: dt.date | None,
    end: dt.date | None,
    on: dt.date,
    today: dt.date,
    programme: ProgrammeType | None = None,
) -> tuple[Sequence[Shared[OutcomeParts]], Sequence[UnreadableCase]]:
    """Every case's part of the figures over ``start``–``end`` as of ``on`` — of ``programme`` at least, if
    one is given — and the cases this version cannot read.

    Each case's outcome timeline as of ``on`` (its part of any period) is kept by revision in one view
    for every caller of ``today`` (``CaseParts.for_everyone``), and a period's parts are taken from the
    timelines (``CaseParts.derived``): a period asked for the first time goes through no case again.
    Each caller takes the parts of the cases they may see; the app's start-up works out the timelines
    as of today, and the figures of all time (what the console shows first)."""
    key = ("outcome-timelines", on, today)
    every, unreadable = parts.for_everyone(
        store, today, key, lambda record: outcome_timeline(record.case, today=on), programme=programme
    )
    return parts.derived(store, (key, start, end, programme), every, lambda t: t.within(start, end)), unreadable


@router.get("", response_model=OutcomesOut, summary="Outcome figures per programme")
def outcomes(
    work: CaseWork,
    programme: ProgrammeType | None = None,
    from_: Annotated[Day | None, Query(alias="from", description="First day of the period (inclusive).")] = None,
    to: Annotated[Day | None, Query(description="Last day of the period (inclusive).")] = None,
    on: Annotated[
        Day | None,
        Query(description="The figures as they stood on this day (the cases as they were then); today if left out."),
    ] = None,
) -> Response:
    """30-day readmissions, length of stay per setting, goal attainment, discharge-to-follow-up days and
    referral completion, over the cases the caller may see, as they stood on ``on`` (today by default).

    A stay counts for a case when it ends within the case's period or at most 30 days before it starts
    (the discharge a referral follows; ``look_back_days`` in ``mappings/outcome-rules.json``); one
    before the start followed by another admission before it is no index discharge. A readmission
    counts whichever case of the patient holds it (any programme), for the index discharge's figures."""
    if from_ is not None and to is not None and to < from_:
        message = f"the period ends ({to}) before it starts ({from_})"
        raise InvalidInput(message, errors=[FieldError(field="to", location="query", message=message)])
    if programme is not None:  # figures of a programme out of reach would all read zero: refused
        check_programme(work.principal, programme)
    # Aggregates show no case: one audit row for the query, not one per case counted.
    audit_reads(work.store, work.principal, [None], action="outcomes", request_id=work.request_id)

    p = work.principal
    today = on or work.today
    key = ("outcomes", p.role, p.practitioner_id, p.programme, programme, from_, to, today, work.today)

    def compute() -> bytes:
        # A programme asked for (or a supervisor's only one): its cases alone gone through, if need be.
        of = programme or programme_scope(p)
        every, unreadable = period_outcome_parts(work.parts, work.store, from_, to, today, work.today, of)

        def theirs() -> tuple[list[OutcomeParts], int, set[str]]:
            parts = seen(p, every, programme)
            # Index discharges: their patients' other cases (any programme, found on the indexed patient
            # column; few patients have several) may hold the readmission, or the hospital one transferred to.
            return parts, len(seen_unreadable(p, unreadable, programme)), patients_to_follow(parts)

        views_ = views(work)
        parts, told, following = views_.from_parts(work.store, ("seen", key), (every, unreadable), theirs)
        others: tuple[Case, ...] = ()
        if following:
            with work.store.session(read_only=True) as session:
                records = cases_of_patients_with_several(session, following, cache=work.store.cases, skipped=[])
            others = tuple(r.case for r in records)

        def made() -> bytes:
            elsewhere = readmission_stays(others, today=today, patients=following) if following else {}
            wanted = [programme] if programme else sorted({part.programme for part in parts})
            figures = [combine_outcomes(each, parts, start=from_, end=to, elsewhere=elsewhere) for each in wanted]
            return json_bytes(OutcomesOut(start=from_, end=to, programmes=figures, unreadable=told))

        # The same parts and the same other cases as last time (the case cache gives a case kept at its
        # revision as the same object): the same figures, not made again over every case. The parts alone
        # would not do: a stay recorded in another case after it closed is in no part, yet a readmission.
        return views_.from_parts(work.store, key, (every, unreadable, *others), made)

    return json_answer(views(work).get(work.store, key, compute))
