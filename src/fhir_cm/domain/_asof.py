"""A case as it stood on a past day, read back from what it records.

A caseload or an outcome figure "as of" a day must count the case as it was then: its status on
that day (from the status history), the contacts and stays up to it, a stay still running if it
ended later, the case manager in charge then. Using today's case for a past day would list cases
not yet opened, count contacts not yet made and give negative day counts.

What the model keeps no history of — a goal's achievement, a referral's status — stays as it is
now; what it dates (needs found and resolved, referrals made, team memberships) is cut at the day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ._case import Case
from ._models import Party, Stay
from ._types import CaseStatus, PartyKind, StayStatus, TeamRole

__all__ = ["case_as_of"]

_ENDED = (CaseStatus.CLOSED, CaseStatus.CANCELLED)


def _stay_on(stay: Stay, day: dt.date) -> Stay:
    """A stay as it stood on ``day``: still running (no end, no disposition) if it ended later."""
    if stay.end is None or stay.end <= day:
        return stay
    return stay.model_copy(update={"status": StayStatus.IN_PROGRESS, "end": None, "discharge_disposition": None})


def _status_on(case: Case, day: dt.date) -> tuple[CaseStatus, list[dict[str, Any]]]:
    """The status on ``day`` and the history up to it (its last entry open)."""
    history = [h.model_dump() for h in case.status_history if h.start <= day]
    if history:
        history[-1]["end"] = None
        return history[-1]["status"], history
    if case.status_history:  # the record starts later than the case: its first status is the best guess
        return case.status_history[0].status, []
    if case.status in _ENDED and case.period.end is not None and case.period.end > day:
        return CaseStatus.ACTIVE, []  # it ended later, so it was still being worked then
    return case.status, []


def _manager_on(case: Case, day: dt.date, status: CaseStatus) -> Party | None:
    """The case manager in charge on ``day``: from the team's case-manager memberships when it has any
    (an end is the last day on the team, as the API and access read it; on a handover day, when one
    leaves and the other joins, the case's own manager or else the newer one).

    A case that had ended by then keeps its last case manager (the memberships ended with it). Only a
    practitioner manages a case: an organisation in that role (an agency a CareTeam names) is none.
    """
    managers = [m for m in case.team if m.role is TeamRole.CASE_MANAGER and m.party.kind is PartyKind.PRACTITIONER]
    if not managers or status in _ENDED:
        return case.case_manager
    current = [m for m in managers if (m.start is None or m.start <= day) and (m.end is None or m.end >= day)]
    if not current:
        return None
    if case.case_manager is not None and any(m.party.same_as(case.case_manager) for m in current):
        return case.case_manager
    return max(current, key=lambda m: m.start or dt.date.min).party


def case_as_of(case: Case, day: dt.date) -> Case | None:
    """``case`` as it stood at the end of ``day``; None if it had not begun by then.

    A case that records nothing dated after ``day`` stood then as it stands now, and is returned as it
    is: the caseload, the outcomes and the worklist of today ask this of every case, and rebuilding
    each (a copy of every part, then the case's validation) was most of their work once the cases
    were decoded.
    """
    if case.period.start > day:
        return None
    if _as_it_stands(case, day):
        return case
    return _rebuilt(case, day)


def _as_it_stands(case: Case, day: dt.date) -> bool:
    """Whether ``_rebuilt(case, day)`` would give ``case`` back: nothing it records is dated after
    ``day``, every reference the rebuild filters is kept, and the case manager in charge on ``day`` is
    the case's own (``tests/domain/test_asof.py`` compares the two over generated cases and days)."""
    if case.period.end is not None and case.period.end > day:
        return False
    if any(h.start > day for h in case.status_history):
        return False
    if any(s.start > day or (s.end is not None and s.end > day) for s in case.stays):
        return False
    if any(n.recorded > day or (n.resolved is not None and n.resolved > day) for n in case.needs):
        return False
    if any(c.date > day for c in case.contacts):
        return False
    if any((m.start is not None and m.start > day) or (m.end is not None and m.end > day) for m in case.team):
        return False
    need_ids = {n.id for n in case.needs}
    if any((g.start is not None and g.start > day) or not need_ids.issuperset(g.addresses) for g in case.goals):
        return False
    stay_ids = {s.id for s in case.stays}
    for r in case.referrals:
        if r.authored > day or (r.for_stay is not None and r.for_stay not in stay_ids):
            return False
        if not need_ids.issuperset(r.addresses):
            return False
    return _manager_on(case, day, case.status) == case.case_manager


def _rebuilt(case: Case, day: dt.date) -> Case:
    """``case`` as it stood at the end of ``day`` (begun by then), made anew from what it records."""
    status, history = _status_on(case, day)
    end = case.period.end if case.period.end is not None and case.period.end <= day else None
    if status in _ENDED and end is None:  # ended by then; no earlier than it began (a history may be older)
        end = max(history[-1]["start"], case.period.start) if history else day
    stays = [_stay_on(s, day) for s in case.stays if s.start <= day]
    stay_ids = {s.id for s in stays}
    needs = [
        n.model_copy(update={"resolved": n.resolved if n.resolved is not None and n.resolved <= day else None})
        for n in case.needs
        if n.recorded <= day
    ]
    need_ids = {n.id for n in needs}
    goals = [
        g.model_copy(update={"addresses": [i for i in g.addresses if i in need_ids]})
        for g in case.goals
        if g.start is None or g.start <= day
    ]
    referrals = [
        r.model_copy(update={"addresses": [i for i in r.addresses if i in need_ids]})
        for r in case.referrals
        if r.authored <= day and (r.for_stay is None or r.for_stay in stay_ids)
    ]
    team = [
        m.model_copy(update={"end": m.end if m.end is not None and m.end <= day else None})
        for m in case.team
        if m.start is None or m.start <= day
    ]
    return Case.model_validate(
        {
            **case.model_dump(),
            "status": status,
            "status_history": history,
            "period": {"start": case.period.start, "end": end},
            "case_manager": _manager_on(case, day, status),
            "needs": needs,
            "goals": goals,
            "referrals": referrals,
            "team": team,
            "contacts": [c for c in case.contacts if c.date <= day],
            "stays": stays,
        }
    )
