"""Request and response bodies of the case-management API.

Entities inside a case (needs, goals, referrals, team members, contacts, stays) travel as the
domain's own models: they are already the case manager's vocabulary, validated, with unknown fields
refused. The case itself goes out with its bookkeeping (revision, times, derived transitions) and
comes in through narrower models, so a client cannot write what a route does not own (status
history, revision). Storage rows never appear here.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import re
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from fhir_cm.domain import (
    Acuity,
    ID_PATTERN,
    AssessmentDomain,
    Case,
    CaseStatus,
    Contact,
    Day,
    DischargeDisposition,
    EligibilityReason,
    Goal,
    GoalAchievement,
    GoalStatus,
    Need,
    Party,
    ProgrammeType,
    Referral,
    ReferralStatus,
    Stay,
    StayStatus,
    TeamMember,
    Transition,
)
from fhir_cm.outcomes import ProgrammeOutcomes
from fhir_cm.store import RecordedTransition

_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}:?\d{2})?$")


def _instant(value: Any) -> Any:
    """An instant as people and FHIR write it (ISO 8601), not a number of seconds: ``0.5`` is refused."""
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _INSTANT.match(value):
        raise ValueError("an instant is written YYYY-MM-DDThh:mm:ss with a zone, e.g. 2026-01-31T08:00:00Z")
    return value


#: A point in time, ISO 8601 only (pydantic alone would take a bare number as Unix seconds).
Instant = Annotated[dt.datetime, BeforeValidator(_instant)]

__all__ = [
    "OPEN_STATUSES",
    "CaseCreate",
    "CaseOut",
    "CasePage",
    "CaseUpdate",
    "CloseIn",
    "EntityId",
    "GoalUpdate",
    "NeedUpdate",
    "OutcomesOut",
    "ReferralMove",
    "StatusChangeIn",
    "StayUpdate",
    "TransitionsOut",
]

EntityId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2_000)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]

#: How many stored cases a list or an aggregate left out because this version cannot read them.
Unreadable = Annotated[
    int,
    Field(
        description="Stored cases this version cannot read (stored before a rule of the case model), left "
        "out here; `fhir-cm check` names them.",
    ),
]

OPEN_STATUSES = (CaseStatus.REFERRED, CaseStatus.WAITLIST, CaseStatus.ACTIVE, CaseStatus.ON_HOLD)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseCreate(_In):
    """A new case: enrolment data, and optionally what is already known of it."""

    id: EntityId | None = Field(default=None, description="Leave out to get a fresh id.")
    programme: ProgrammeType
    status: CaseStatus = Field(default=CaseStatus.ACTIVE, description="One of the open statuses.")
    start: Day | None = Field(default=None, description="Enrolment day; today if left out.")
    patient: Party
    case_manager: Party | None = Field(default=None, description="Left out by a case manager: themselves.")
    referral_source: Party | None = None
    eligibility: list[EligibilityReason] = []
    acuity: Acuity = Acuity.MODERATE
    plan_summary: Text | None = None
    needs: list[Need] = []
    goals: list[Goal] = []
    referrals: list[Referral] = []
    team: list[TeamMember] = []
    contacts: list[Contact] = []
    stays: list[Stay] = []

    @field_validator("status")
    @classmethod
    def _open(cls, status: CaseStatus) -> CaseStatus:
        if status not in OPEN_STATUSES:
            raise ValueError(f"a new case starts open ({', '.join(OPEN_STATUSES)}); close it afterwards")
        return status


class CaseUpdate(_In):
    """Changes to a case's own fields; only the fields sent are changed."""

    acuity: Acuity | None = None
    plan_summary: Text | None = None
    eligibility: list[EligibilityReason] | None = None
    referral_source: Party | None = None
    case_manager: Party | None = Field(default=None, description="Supervisors only: hand the case over.")


class StatusChangeIn(_In):
    """Move a case to a new status (the history keeps the old one and the reason)."""

    status: CaseStatus
    on: Day | None = Field(default=None, description="Day of the change; today if left out.")
    reason: Reason | None = None


class CloseIn(_In):
    """Close a case: evaluation done, discharged from case management."""

    on: Day | None = Field(default=None, description="Day of closure; today if left out.")
    reason: Reason | None = None


class NeedUpdate(_In):
    """Changes to an assessment finding."""

    domain: AssessmentDomain | None = None
    finding: Text | None = None
    resolved: Day | None = None
    strengths: list[Text] | None = None


class GoalUpdate(_In):
    """Progress on a goal: its status, achievement, dates or measure."""

    description: Text | None = None
    status: GoalStatus | None = None
    achievement: GoalAchievement | None = None
    start: Day | None = None
    due: Day | None = None
    target: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    addresses: list[EntityId] | None = None


class ReferralMove(_In):
    """Move a referral along its life cycle; rejected, cancelled, failed and on-hold need a reason."""

    status: ReferralStatus
    reason: Reason | None = None


class StayUpdate(_In):
    """Changes to a stay in a care setting, typically its end and discharge disposition."""

    status: StayStatus | None = None
    end: Day | None = None
    discharge_disposition: DischargeDisposition | None = None
    provider: Party | None = None


class CaseOut(BaseModel):
    """A case as stored (``case``), with its revision (also its ETag) and the transitions its stays show."""

    case: Case
    revision: int
    created_at: dt.datetime
    updated_at: dt.datetime
    transitions: list[Transition]
    dates_as_written: dict[str, str] = Field(
        default_factory=dict,
        description="On a read of the case: each day of it read from a date its source wrote as a year or a "
        "month (a goal due '2024-06' is held as due by 2024-06-30), by JSON pointer into `case` "
        "(`/goals/0/due`) → the date as written ('2024-06'), for showing it at that precision.",
    )


class CasePage(BaseModel):
    """One page of cases; ``next_offset`` is None on the last page."""

    items: list[CaseOut]
    limit: int
    offset: int
    next_offset: int | None
    unreadable: Unreadable = 0


class TransitionsOut(BaseModel):
    """A case's moves between care settings: derived from its stays, and as recorded by the tracker."""

    case_id: str
    derived: list[Transition]
    recorded: list[RecordedTransition]


class OutcomesOut(BaseModel):
    """Outcome figures per programme over a period."""

    start: dt.date | None
    end: dt.date | None
    programmes: list[ProgrammeOutcomes]
    unreadable: Unreadable = 0
