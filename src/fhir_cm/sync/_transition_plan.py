"""The discharge rule: a patient in an open case who left a hospital, skilled nursing or rehabilitation
stay needs a transition plan — the follow-up due, and the transfer summary for the next setting.

One rule, used wherever a discharge becomes known: the pull round, for each move out of such a stay
the tracker records (``PullRoundReport.transition_plans``, printed by ``fhir-cm pull``); the CDS
Hooks ``encounter-discharge`` service (the EHR says so as it happens); and the ``patient-view``
service, which applies it to the discharges the tracker recorded in the last 30 days (for EHRs that
fire only ``patient-view``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pydantic import BaseModel, Field

from ..caseload import case_intensity
from ..domain import Case, CareSetting, referral_days_as_written, with_dates_as_written
from ._transfer_summary import handoff_moves

__all__ = ["RECENT_DISCHARGE_DAYS", "TransitionPlan", "transition_plan"]

#: How long after a discharge the patient-view card keeps asking for the transition plan.
RECENT_DISCHARGE_DAYS = 30


class TransitionPlan(BaseModel):
    """What the case manager and the receiving team need after a discharge."""

    case_id: str
    discharged_on: dt.date
    discharged_on_as_written: str | None = Field(
        default=None,
        description="The discharge day as its source wrote it, where the stay's end was a year or a month "
        "('2024-06': discharged_on is then the last day of it); None where it is a day.",
    )
    from_setting: CareSetting | None = None
    to_setting: CareSetting | None = None
    follow_up_due: dt.date | None = Field(default=None, description="The next follow-up still to be done.")
    follow_up_due_as_written: str | None = Field(
        default=None,
        description="That follow-up's due as its source wrote it, where that was a year or a month "
        "('2024-06': follow_up_due is then the last day of it); None where it is a day.",
    )
    follow_up_overdue: bool = False
    move: int | None = Field(default=None, description="The move's number among the case's hand-off moves.")


def transition_plan(
    case: Case,
    today: dt.date,
    *,
    discharged_on: dt.date | None = None,
    move: int | None = None,
    written: Mapping[str, str] | None = None,
) -> TransitionPlan | None:
    """The plan an open case needs after a discharge, or None.

    ``move`` (a number among the case's hand-off moves, from 1): the tracker has just recorded that
    discharge. ``discharged_on``: the EHR reports a discharge now (it may not be among the case's stays
    yet). Neither: the latest move out of a hospital, SNF or rehabilitation stay counts if it is at
    most ``RECENT_DISCHARGE_DAYS`` old. ``written``: the case's dates as written, stored with it
    (``CaseRecord.dates_as_written``), so a follow-up due "2024-06" is said so, and a discharge then.
    """
    if not case.is_open:
        return None
    moves = handoff_moves(case)
    chosen = moves[move - 1] if move is not None and 0 < move <= len(moves) else None
    if move is not None and chosen is None:
        return None
    if chosen is None:
        latest = moves[-1] if moves else None
        if discharged_on is None:
            if latest is None or (today - latest.date).days > RECENT_DISCHARGE_DAYS:
                return None
            discharged_on = latest.date
        if latest is not None and abs((latest.date - discharged_on).days) <= 1:
            chosen, move = latest, len(moves)
    intensity = case_intensity(case, today, referral_days_as_written(case, written, "due"))
    said = with_dates_as_written(case, [chosen], written)[0] if chosen is not None else None
    return TransitionPlan(
        case_id=case.id,
        discharged_on=chosen.date if chosen is not None else discharged_on or today,
        discharged_on_as_written=said.date_as_written if said is not None else None,
        from_setting=chosen.from_setting if chosen is not None else None,
        to_setting=chosen.to_setting if chosen is not None else None,
        follow_up_due=intensity.next_follow_up_due,
        follow_up_due_as_written=intensity.next_follow_up_due_as_written,
        follow_up_overdue=intensity.follow_ups_overdue > 0,
        move=move if chosen is not None else None,
    )
