"""The discharge rule: a patient in an open case who left a hospital, skilled nursing or rehabilitation
stay needs a transition plan — the follow-up due, and the transfer summary for the next setting.

One rule, used wherever a discharge becomes known: the CDS Hooks ``encounter-discharge`` service (the
EHR says so as it happens) and the ``patient-view`` service, which applies it to the discharges the
transitions tracker recorded (for EHRs that fire only ``patient-view``).
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from ..caseload import case_intensity
from ..domain import Case, CareSetting
from ._transfer_summary import handoff_moves

__all__ = ["RECENT_DISCHARGE_DAYS", "TransitionPlan", "transition_plan"]

#: How long after a discharge the patient-view card keeps asking for the transition plan.
RECENT_DISCHARGE_DAYS = 30


class TransitionPlan(BaseModel):
    """What the case manager and the receiving team need after a discharge."""

    case_id: str
    discharged_on: dt.date
    from_setting: CareSetting | None = None
    to_setting: CareSetting | None = None
    follow_up_due: dt.date | None = Field(default=None, description="The next follow-up still to be done.")
    follow_up_overdue: bool = False
    move: int | None = Field(default=None, description="The move's number among the case's hand-off moves.")


def transition_plan(case: Case, today: dt.date, *, discharged_on: dt.date | None = None) -> TransitionPlan | None:
    """The plan an open case needs after a discharge, or None.

    With ``discharged_on`` (the EHR reports a discharge now) an open case always needs one; without, the
    latest move out of a hospital, SNF or rehabilitation stay the case records counts if it is at most
    ``RECENT_DISCHARGE_DAYS`` old.
    """
    if not case.is_open:
        return None
    moves = handoff_moves(case)
    latest = moves[-1] if moves else None
    if discharged_on is None:
        if latest is None or (today - latest.date).days > RECENT_DISCHARGE_DAYS:
            return None
        discharged_on = latest.date
    same = latest is not None and abs((latest.date - discharged_on).days) <= 1
    intensity = case_intensity(case, today)
    return TransitionPlan(
        case_id=case.id,
        discharged_on=discharged_on,
        from_setting=latest.from_setting if same and latest else None,
        to_setting=latest.to_setting if same and latest else None,
        follow_up_due=intensity.next_follow_up_due,
        follow_up_overdue=intensity.follow_ups_overdue > 0,
        move=len(moves) if same else None,
    )
