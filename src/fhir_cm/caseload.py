"""Caseload: how many open cases each case manager carries, and how often they see their people.

The strongest case-management results come from small caseloads with frequent face-to-face
contact, so the view shows both: open cases per manager against a limit (about 20),
and the days since the last face-to-face contact of every case. Pure functions over the domain
model: the API, the CLI and the demo compute the same figures.

A caseload "on" a day is the caseload as it was that day: each case as it stood then
(``case_as_of``: its status from the history, the case manager in charge, the contacts made up to
that day), so a case opened later is not listed and no contact made later shortens a gap.

A follow-up the hospital wrote as due in a month ("2024-06") is due by its last day for sorting and
"overdue", and shown as written (``next_follow_up_due_as_written``): nobody set the 30th.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from fhir_cm.domain import (
    Case,
    CaseStatus,
    ProgrammeType,
    ReferralKind,
    ReferralStatus,
    allowed_referral_moves,
    case_as_of,
    referral_days_as_written,
)

__all__ = [
    "CaseIntensity",
    "CaseloadPart",
    "ManagerCaseload",
    "case_intensity",
    "caseload_part",
    "compute_caseload",
    "group_caseload",
]


class CaseIntensity(BaseModel):
    """One open case and its contact intensity: days since the last face-to-face contact (None: never)."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    programme: ProgrammeType
    status: CaseStatus
    last_face_to_face: dt.date | None
    days_since_face_to_face: int | None
    next_follow_up_due: dt.date | None = None
    next_follow_up_due_as_written: str | None = Field(
        default=None,
        description="The next follow-up due as its source wrote it, where that was a year or a month "
        "('2024-06': next_follow_up_due is then the last day of it); None where it is a day.",
    )
    follow_ups_overdue: int = 0


class ManagerCaseload(BaseModel):
    """A case manager's open cases, the average and worst contact gap, and whether the load is too high."""

    model_config = ConfigDict(frozen=True)

    case_manager: str | None
    case_manager_name: str | None = None
    #: The base URL of the server keeping the case manager's record when it is another server's (an
    #: outside party, ``Party.server``): a case managed from there is in no local case manager's load.
    case_manager_server: str | None = None
    open_cases: int
    limit: int
    over_limit: bool
    cases_never_seen: int
    average_days_since_face_to_face: float | None
    max_days_since_face_to_face: int | None
    cases: list[CaseIntensity]


def case_intensity(case: Case, on: dt.date, dues_as_written: Mapping[str, str] | None = None) -> CaseIntensity:
    """The contact gap of ``case`` as it stood on ``on`` (its contacts are those made by then).

    ``dues_as_written``: referral id → its due as its source wrote it, a year or a month
    (``referral_days_as_written``); the next follow-up due is said so when it is one of those. Of two
    due the same day, one someone gave as that day comes first: it says more.
    """
    last = case.last_face_to_face()
    days = None if last is None else (on - last).days
    written = dues_as_written or {}
    # A follow-up still to be done: a follow-up referral made by then, not at an end of its life cycle.
    due = sorted(
        (r.due, r.id in written, written.get(r.id))
        for r in case.referrals
        if r.kind is ReferralKind.FOLLOW_UP
        and r.due is not None
        and r.authored <= on
        and allowed_referral_moves(r.status)
        and r.status is not ReferralStatus.DRAFT
    )
    return CaseIntensity(
        case_id=case.id,
        programme=case.programme,
        status=case.status,
        last_face_to_face=last,
        days_since_face_to_face=days,
        next_follow_up_due=due[0][0] if due else None,
        next_follow_up_due_as_written=due[0][2] if due else None,
        follow_ups_overdue=sum(1 for d, _, _ in due if d < on),
    )


class CaseloadPart(BaseModel):
    """What one case adds to a caseload on a day: its manager (None: none yet) and its intensity."""

    model_config = ConfigDict(frozen=True)

    case_manager: str | None
    case_manager_name: str | None
    intensity: CaseIntensity
    case_manager_server: str | None = None


def caseload_part(current: Case, on: dt.date, written: Mapping[str, str] | None = None) -> CaseloadPart | None:
    """The case's part of the caseload on ``on`` (as it stood then); None when it was not open then.

    ``written``: the case's days its sources wrote as a year or a month (JSON pointer into ``current``
    → the date as written), stored with the case, so the caseload reads no resource to say them."""
    case = case_as_of(current, on)
    if case is None or not case.is_open:
        return None
    manager = case.case_manager
    return CaseloadPart(
        case_manager=manager.id if manager else None,
        case_manager_name=manager.name if manager else None,
        case_manager_server=manager.server if manager else None,
        intensity=case_intensity(case, on, referral_days_as_written(current, written, "due")),
    )


def compute_caseload(cases: Iterable[Case], *, on: dt.date, limit: int) -> list[ManagerCaseload]:
    """The caseload of every case manager with open cases on ``on``, ordered by manager id.

    Each case counts as it stood on ``on`` (see the module docstring), so day counts are never
    negative. Only cases open that day count (referred, waitlisted, active, on hold:
    ``Case.is_open``). Cases with no case manager are grouped under ``None``, listed last: someone
    has to pick them up. The averages are over the cases seen face to face at least once; the
    others are counted in ``cases_never_seen``, since a case never seen is no "0 days".
    """
    return group_caseload([p for c in cases if (p := caseload_part(c, on)) is not None], limit=limit)


def group_caseload(parts: Iterable[CaseloadPart], *, limit: int) -> list[ManagerCaseload]:
    """The caseloads the cases' parts make up (:func:`compute_caseload` from parts kept per case)."""
    # A manager by who they are: another server's practitioner is not the local one of the same id.
    groups: dict[tuple[str | None, str | None], list[CaseIntensity]] = defaultdict(list)
    names: dict[tuple[str | None, str | None], str] = {}
    for part in parts:
        who = (part.case_manager, part.case_manager_server)
        if part.case_manager is not None and part.case_manager_name:
            names.setdefault(who, part.case_manager_name)
        groups[who].append(part.intensity)
    out = []
    # Local managers first, then those of other servers, then no one.
    for manager, server in sorted(groups, key=lambda m: (m[0] is None, m[1] is not None, m[1] or "", m[0] or "")):
        rows = sorted(groups[(manager, server)], key=lambda r: r.case_id)
        gaps = [r.days_since_face_to_face for r in rows if r.days_since_face_to_face is not None]
        out.append(
            ManagerCaseload(
                case_manager=manager,
                case_manager_name=names.get((manager, server)) if manager is not None else None,
                case_manager_server=server,
                open_cases=len(rows),
                limit=limit,
                over_limit=len(rows) > limit,
                cases_never_seen=len(rows) - len(gaps),
                average_days_since_face_to_face=round(sum(gaps) / len(gaps), 2) if gaps else None,
                max_days_since_face_to_face=max(gaps) if gaps else None,
                cases=rows,
            )
        )
    return out
