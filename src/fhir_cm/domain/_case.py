"""The case: one person's enrolment in a case-management programme, and everything done in it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from ._models import (
    Contact,
    EntityId,
    Goal,
    Need,
    Party,
    Period,
    Referral,
    Stay,
    StatusChange,
    TeamMember,
    _Model,
    new_id,
    OptionalNote,
    once_each,
)
from ._transitions import (
    CurrentSetting,
    Transition,
    current_setting,
    derive_transitions,
)
from ._types import Acuity, CaseStatus, ContactMode, EligibilityReason, PartyKind, ProgrammeType, TeamRole
from ..errors import FhirCmError

__all__ = ["Case", "CaseTransitionError"]

#: The statuses of a case still being worked.
_OPEN = frozenset({CaseStatus.REFERRED, CaseStatus.WAITLIST, CaseStatus.ACTIVE, CaseStatus.ON_HOLD})


class CaseTransitionError(FhirCmError, ValueError):
    """A case was asked to leave a status it cannot leave: ``entered-in-error`` is final (FHIR's
    EpisodeOfCare ends there; a case recorded by mistake is recorded again, not revived)."""


class Case(_Model):
    """A case: enrolment, assessment, plan, referrals, team, monitoring and the stays in care settings."""

    id: EntityId = Field(default_factory=new_id)
    programme: ProgrammeType
    status: CaseStatus = CaseStatus.ACTIVE
    status_history: list[StatusChange] = Field(default_factory=list)
    period: Period
    patient: Party
    case_manager: Party | None = None
    referral_source: Party | None = None
    eligibility: Annotated[list[EligibilityReason], AfterValidator(once_each)] = Field(default_factory=list)
    acuity: Acuity = Acuity.MODERATE
    plan_summary: OptionalNote = Field(default=None, description="The care plan in a few sentences.")
    needs: list[Need] = Field(default_factory=list)
    goals: list[Goal] = Field(default_factory=list)
    referrals: list[Referral] = Field(default_factory=list)
    team: list[TeamMember] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    stays: list[Stay] = Field(default_factory=list)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.patient.kind is not PartyKind.PATIENT:
            raise ValueError("patient must be a party of kind 'patient'")
        if self.patient.outside:
            raise ValueError("the patient must be a record of the case's own server, not another server's")
        if self.case_manager is not None and self.case_manager.kind is not PartyKind.PRACTITIONER:
            raise ValueError("case_manager must be a party of kind 'practitioner'")
        ids = Counter(
            e.id
            for group in (self.needs, self.goals, self.referrals, self.team, self.contacts, self.stays)
            for e in group
        )
        ids[self.id] += 1
        dupes = sorted(i for i, n in ids.items() if n > 1)
        if dupes:
            raise ValueError(f"ids must be unique within a case; repeated: {', '.join(dupes)}")
        need_ids = {n.id for n in self.needs}
        addressing: list[Goal | Referral] = [*self.goals, *self.referrals]
        for item in addressing:
            missing = [i for i in item.addresses if i not in need_ids]
            if missing:
                raise ValueError(
                    f"{type(item).__name__.lower()} {item.id} addresses unknown needs: {', '.join(missing)}"
                )
        stay_ids = {s.id for s in self.stays}
        for r in self.referrals:
            if r.for_stay is not None and r.for_stay not in stay_ids:
                raise ValueError(f"referral {r.id} follows up unknown stay {r.for_stay}")
        if self.status_history:
            last = self.status_history[-1]
            if last.status is not self.status or last.end is not None:
                raise ValueError("the last status_history entry must be the current status, still open (no end)")
            for a, b in zip(self.status_history, self.status_history[1:], strict=False):
                if a.end is None or a.end > b.start:
                    raise ValueError("status_history entries must be in order and each closed before the next starts")
        if self.status in (CaseStatus.CLOSED, CaseStatus.CANCELLED) and self.period.end is None:
            raise ValueError(f"a case that is '{self.status}' needs period.end (the day it ended)")
        return self

    # --- derived views ------------------------------------------------------------------------------

    @property
    def transitions(self) -> list[Transition]:
        """Moves between care settings, read off the stays (see ``derive_transitions``)."""
        return derive_transitions(self.stays, self.referrals)

    @property
    def current_setting(self) -> CurrentSetting | None:
        """Where the person is now and since when, read off the stays (see ``current_setting``)."""
        return current_setting(self.stays)

    @property
    def is_open(self) -> bool:
        """Whether the case is still being worked (it counts towards a caseload)."""
        return self.status in _OPEN

    def last_face_to_face(self) -> dt.date | None:
        """The day of the latest face-to-face contact, the measure of contact intensity."""
        days = [c.date for c in self.contacts if c.mode is ContactMode.FACE_TO_FACE]
        return max(days) if days else None

    def change_status(self, status: CaseStatus, on: dt.date, reason: str | None = None) -> None:
        """Move the case to a new status, closing the current history entry and opening the next.

        The period follows: closing or cancelling ends it on ``on``, reopening clears its end. A case
        entered in error stays so (``CaseTransitionError``).
        """
        if self.status is CaseStatus.ENTERED_IN_ERROR:
            raise CaseTransitionError(f"case {self.id} was entered in error: it cannot move to '{status}'")
        history = list(self.status_history) or [StatusChange(status=self.status, start=self.period.start)]
        current = history[-1]
        if on < current.start:
            raise ValueError(f"status change on {on} is before the current status began ({current.start})")
        history[-1] = current.model_copy(update={"end": on})
        history.append(StatusChange(status=status, start=on, reason=reason))
        period = self.period
        if status in (CaseStatus.CLOSED, CaseStatus.CANCELLED):
            period = Period(start=period.start, end=on)
        elif status in _OPEN:
            # Reopened: the case has not ended (an end left behind would read as a past, planned end).
            period = Period(start=period.start)
        # Validate the whole case once, with every field changed together.
        updated = self.model_validate(
            {**self.model_dump(), "status": status, "status_history": history, "period": period}
        )
        for name in ("status_history", "period", "status"):
            object.__setattr__(self, name, getattr(updated, name))

    def hand_over(self, manager: Party | None, on: dt.date) -> None:
        """Make ``manager`` (None: no one) the case manager from ``on``, keeping on the team who managed
        the case when: the other case-manager memberships running then end the day before (an end is the
        last day on the team), and ``manager`` joins in that role from ``on``. A day's caseload reads these:
        one left running kept the case in the old manager's caseload, and on their team. A manager the team
        held no membership of had the case from its start.
        """
        if manager.same_as(self.case_manager) if manager is not None else self.case_manager is None:
            return
        team = list(self.team)
        managing = [m for m in team if m.role is TeamRole.CASE_MANAGER and m.party.kind is PartyKind.PRACTITIONER]
        eve = on - dt.timedelta(days=1)
        before = self.case_manager
        if before is not None and self.period.start < on and not any(m.party.same_as(before) for m in managing):
            team.append(TeamMember(role=TeamRole.CASE_MANAGER, party=before, start=self.period.start, end=eve))
        ending = {m.id for m in managing if _on_team(m, on) and not m.party.same_as(manager)}
        team = [  # one who joined that very day stays for it (a membership ends no earlier than it starts)
            m.model_copy(update={"end": eve if m.start is None or m.start < on else m.start}) if m.id in ending else m
            for m in team
        ]
        if manager is not None and not any(m.party.same_as(manager) and _on_team(m, on) for m in managing):
            team.append(TeamMember(role=TeamRole.CASE_MANAGER, party=manager, start=on))
        updated = self.model_validate({**self.model_dump(), "case_manager": manager, "team": team})
        for name in ("case_manager", "team"):
            object.__setattr__(self, name, getattr(updated, name))


def _on_team(member: TeamMember, day: dt.date) -> bool:
    """Whether ``member`` is on the team on ``day`` (its end is its last day)."""
    return (member.start is None or member.start <= day) and (member.end is None or member.end >= day)
