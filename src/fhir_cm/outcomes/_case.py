"""One case's part of its programme's figures: over any period as of a day (``OutcomeTimeline``), and
over one period (``OutcomeParts``, taken from the timeline by date). The rules are the package's
docstring's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from fhir_cm.domain import (
    READMISSION_WINDOW_DAYS,
    CareSetting,
    Case,
    CaseStatus,
    DischargeDisposition,
    GoalAchievement,
    GoalStatus,
    ProgrammeType,
    ReferralStatus,
    Stay,
    StayStatus,
    case_as_of,
    transferred,
)

from ._rules import load_outcome_rules

__all__ = ["IndexDischarge", "OutcomeParts", "OutcomeTimeline", "outcome_parts", "outcome_timeline", "real_stays"]

_ATTAINED = frozenset({GoalAchievement.ACHIEVED, GoalAchievement.SUSTAINING})
_NOT_JUDGED = frozenset({GoalStatus.PROPOSED, GoalStatus.REJECTED, GoalStatus.CANCELLED})
_REFERRAL_ENDS = frozenset(
    {ReferralStatus.COMPLETED, ReferralStatus.FAILED, ReferralStatus.CANCELLED, ReferralStatus.REJECTED}
)
_NOT_A_STAY = frozenset({StayStatus.CANCELLED, StayStatus.PLANNED})
_NOT_IN_CARE = frozenset({CaseStatus.CLOSED, CaseStatus.CANCELLED, CaseStatus.ENTERED_IN_ERROR})


def _care_spans(case: Case) -> tuple[tuple[dt.date, dt.date | None], ...] | None:
    """The spans of the case's status history in case management (``None``: it has no history, its
    period alone tells). Reopening clears the period's end, so the history tells the months between a
    closure and a reopening apart (the time before a history that begins later than the case counts as
    its first status, as ``case_as_of`` reads it)."""
    if not case.status_history:
        return None
    return tuple(
        (case.period.start if i == 0 else entry.start, entry.end)
        for i, entry in enumerate(case.status_history)
        if entry.status not in _NOT_IN_CARE
    )


def _overlaps(
    period: tuple[dt.date, dt.date | None],
    spans: tuple[tuple[dt.date, dt.date | None], ...] | None,
    start: dt.date | None,
    end: dt.date | None,
) -> bool:
    """Whether a case of ``period`` and care ``spans`` (``_care_spans``) was in case management some day
    of ``start``–``end``."""
    first, last = period
    if not ((end is None or first <= end) and (start is None or last is None or last >= start)):
        return False
    return spans is None or any(
        (end is None or since <= end) and (start is None or until is None or until >= start) for since, until in spans
    )


def real_stays(case: Case) -> list[Stay]:
    return [s for s in case.stays if s.status not in _NOT_A_STAY]


def _the_cases(stay: Stay, case: Case) -> bool:
    """Whether the finished ``stay`` is the case's: it ended within the case's period or within the
    look-back window before it (subtracting dates, never adding days: no overflow near the calendar's ends)."""
    assert stay.end is not None
    if case.period.end is not None and stay.end > case.period.end:
        return False
    return (case.period.start - stay.end).days <= load_outcome_rules().look_back_days


def _readmitted_before(stay: Stay, case: Case, stays: Sequence[Stay]) -> bool:
    """Whether another acute-hospital stay began between ``stay``'s end and the case's start: then that
    admission is the one the referral came from, and ``stay`` is history before the programme."""
    assert stay.end is not None
    return any(
        other.id != stay.id
        and other.setting is CareSetting.ACUTE_HOSPITAL
        and stay.end <= other.start < case.period.start
        for other in stays
    )


def _index_discharges(case: Case, stays: Sequence[Stay]) -> list[Stay]:
    """The case's index discharges of any period (each counts in the period its ``end`` falls in)."""
    return [
        s
        for s in stays
        if s.setting is CareSetting.ACUTE_HOSPITAL
        and s.status is StayStatus.FINISHED
        and s.end is not None
        and _the_cases(s, case)
        and not _readmitted_before(s, case, stays)
        and s.discharge_disposition is not DischargeDisposition.EXPIRED
        and not any(transferred(s, other) or _in_hospital_past(other, s) for other in stays)
    ]


def _in_hospital_past(other: Stay, stay: Stay) -> bool:
    """Whether the acute-hospital stay ``other`` kept the person in hospital past ``stay``'s end (a
    ward's own record, the same stay recorded twice): ``stay``'s end was then no discharge."""
    assert stay.end is not None
    return (
        other.id != stay.id
        and other.setting is CareSetting.ACUTE_HOSPITAL
        and other.start < stay.end
        and (other.end is None or other.end > stay.end)
    )


def _readmitted(discharge: Stay, stays: Sequence[Stay]) -> bool:
    assert discharge.end is not None
    return any(
        other.id != discharge.id
        and other.setting is CareSetting.ACUTE_HOSPITAL
        # Subtracting dates, never adding days: a date near 9999-12-31 must not overflow.
        and 0 <= (other.start - discharge.end).days <= READMISSION_WINDOW_DAYS
        for other in stays
    )


def _days_to_follow_up(discharge: Stay, case: Case) -> int | None:
    assert discharge.end is not None
    after = [c.date for c in case.contacts if c.date >= discharge.end]
    return (min(after) - discharge.end).days if after else None


class IndexDischarge(BaseModel):
    """An index discharge of a case, with what the case itself tells of it: whether a stay of its own
    readmitted it, and the days to its first contact. Kept apart so that one another case of the
    patient shows to be no discharge (the hospital it transferred the person to) drops out whole."""

    model_config = ConfigDict(frozen=True)

    stay: Stay
    readmitted: bool = False
    follow_up_days: int | None = None


class OutcomeParts(BaseModel):
    """What one case adds to its programme's figures over a period, as of a day: counts, and the
    values medians are taken over. Figures kept per case are combined without reading the case again,
    except its index discharges: another case of the same patient may hold the hospital one of them
    transferred the person to, or the readmission its own stays lack (``combine_outcomes`` is handed
    that patient's other stays)."""

    model_config = ConfigDict(frozen=True)

    programme: ProgrammeType
    case_id: str = ""
    patient_id: str = ""
    case_start: dt.date | None = None
    index_discharges: tuple[IndexDischarge, ...] = ()
    overlaps: bool = False
    stays: tuple[tuple[CareSetting, int], ...] = ()
    goals_due: int = 0
    attained: int = 0
    referrals: int = 0
    ended: int = 0
    completed: int = 0

    @property
    def open_discharges(self) -> tuple[Stay, ...]:
        """The index discharges no stay of the case's own readmitted."""
        return tuple(d.stay for d in self.index_discharges if not d.readmitted)


class OutcomeTimeline(BaseModel):
    """What one case adds to its programme's figures over **any** period, as of a day: each event the
    figures count with the day that places it in a period (a stay's and a discharge's end, a goal's due
    date, a referral's authoring) and the spans the case was in case management.

    Working this out means reading the whole case as it stood that day; taking a period's part from it
    (``within``) is a filter by date. So a case is read once per revision and day, however many periods
    are asked for: the API keeps timelines, and the first answer for a new period costs a filter of
    each case's few events, not a read of every case."""

    model_config = ConfigDict(frozen=True)

    programme: ProgrammeType
    #: False for a case that does not count as of the day (not begun by then, or entered in error).
    counts: bool = False
    case_id: str = ""
    patient_id: str = ""
    period: tuple[dt.date, dt.date | None] | None = None
    care_spans: tuple[tuple[dt.date, dt.date | None], ...] | None = None
    #: (end, setting, days) of each finished stay that is the case's.
    stays: tuple[tuple[dt.date, CareSetting, int], ...] = ()
    #: (end, the discharge) of each index discharge.
    index_discharges: tuple[tuple[dt.date, IndexDischarge], ...] = ()
    #: (due, attained) of each goal judged by the day.
    goals: tuple[tuple[dt.date, bool], ...] = ()
    #: (authored, ended, completed) of each referral past its draft.
    referrals: tuple[tuple[dt.date, bool, bool], ...] = ()
    #: The first and the last day of the events above (``None``: there are none).
    events: tuple[dt.date, dt.date] | None = None

    def within(self, start: dt.date | None, end: dt.date | None) -> OutcomeParts:
        """The case's part of the figures over ``start``–``end`` (inclusive; ``None``: open-ended)."""
        if not self.counts or self.period is None:
            return OutcomeParts(programme=self.programme)
        # A period's first answer takes this of every case: comparisons inline, no call per event.
        lo, hi = start or dt.date.min, end or dt.date.max
        if self.events is None or self.events[1] < lo or self.events[0] > hi:  # most cases, in a short period
            return OutcomeParts(
                programme=self.programme,
                case_id=self.case_id,
                patient_id=self.patient_id,
                case_start=self.period[0],
                overlaps=_overlaps(self.period, self.care_spans, start, end),
            )
        goals = [attained for due, attained in self.goals if lo <= due <= hi]
        referrals = [(ended, completed) for authored, ended, completed in self.referrals if lo <= authored <= hi]
        return OutcomeParts(
            programme=self.programme,
            case_id=self.case_id,
            patient_id=self.patient_id,
            case_start=self.period[0],
            index_discharges=tuple(d for ended, d in self.index_discharges if lo <= ended <= hi),
            overlaps=_overlaps(self.period, self.care_spans, start, end),
            stays=tuple((setting, days) for ended, setting, days in self.stays if lo <= ended <= hi),
            goals_due=len(goals),
            attained=sum(goals),
            referrals=len(referrals),
            ended=sum(ended for ended, _ in referrals),
            completed=sum(completed for _, completed in referrals),
        )


def _ended(stay: Stay) -> dt.date:
    assert stay.end is not None
    return stay.end


def outcome_timeline(current: Case, *, today: dt.date) -> OutcomeTimeline:
    """The case's part of its programme's figures over any period, as of ``today`` (``OutcomeTimeline``):
    nothing but its programme when it does not count (not begun by then, or entered in error)."""
    case = case_as_of(current, today)
    if case is None or case.status is CaseStatus.ENTERED_IN_ERROR:
        return OutcomeTimeline(programme=current.programme)
    stays = real_stays(case)
    lengths = tuple(
        (stay.end, stay.setting, (stay.end - stay.start).days)
        for stay in stays
        if stay.status is StayStatus.FINISHED and stay.end is not None and _the_cases(stay, case)
    )
    discharges = tuple(
        (
            _ended(d),
            IndexDischarge(stay=d, readmitted=_readmitted(d, stays), follow_up_days=_days_to_follow_up(d, case)),
        )
        for d in _index_discharges(case, stays)
    )
    goals = tuple(
        (g.due, g.achievement in _ATTAINED)
        for g in case.goals
        if g.due is not None and g.status not in _NOT_JUDGED and g.due <= today
    )
    referrals = tuple(
        (r.authored, r.status in _REFERRAL_ENDS, r.status is ReferralStatus.COMPLETED)
        for r in case.referrals
        if r.status is not ReferralStatus.DRAFT
    )
    days = [event[0] for events in (lengths, discharges, goals, referrals) for event in events]
    return OutcomeTimeline(
        programme=case.programme,
        counts=True,
        case_id=case.id,
        patient_id=case.patient.id,
        period=(case.period.start, case.period.end),
        care_spans=_care_spans(case),
        stays=lengths,
        index_discharges=discharges,
        goals=goals,
        referrals=referrals,
        events=(min(days), max(days)) if days else None,
    )


def outcome_parts(current: Case, *, start: dt.date | None, end: dt.date | None, today: dt.date) -> OutcomeParts:
    """The case's part of its programme's figures over ``start``–``end`` as of ``today``: nothing but
    its programme when it does not count (not begun by then, or entered in error)."""
    return outcome_timeline(current, today=today).within(start, end)
