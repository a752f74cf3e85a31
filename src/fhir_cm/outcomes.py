"""Outcome figures of a case-management programme over a period, computed from cases alone.

What the field measures: 30-day readmissions, length of stay, goal attainment, time
from hospital discharge to follow-up, and here also how many referrals end in the service being
delivered. Each figure counts the events whose own date falls in the period (both ends included).

A stay is the **case's** when it ends within the case's period, or at most ``look_back_days`` before
it starts (``mappings/outcome-rules.json``, 30: the discharge a referral to case management follows
within days). Stays ending earlier are the patient's history before enrolment, those ending after a
closure are no longer the programme's; a readmission is still looked for among all the stays.

* **Readmissions** — index events are the case's finished acute-hospital stays that ended in the
  period, except those ending in death (disposition ``exp``), in a transfer to another acute hospital (the
  domain's ``transferred``: one episode of care, as CMS counts it), or while another acute-hospital
  stay begun before went on past them (not a discharge), or ending before the case began when
  another acute-hospital stay began before it too (the admission the referral came from: that
  readmission happened before the programme could act). One is readmitted when another acute-hospital
  stay of the **patient** starts 0–30 days after it ended (the domain's ``READMISSION_WINDOW_DAYS``),
  even if that second stay starts after the period, and whichever of the patient's cases holds it —
  the measure counts by patient: discharged at the end of one case and admitted again into the next
  is a readmission, counted once, for the programme and period of the index discharge. Another case's
  stay counts as that case stood on ``today`` (not one begun later, nor one entered in error), unless
  it is the index stay recorded there too (same start and end) or where the index stay transferred the
  person. Whichever of the patient's cases records the hospital a stay transferred the person to, or
  the admission between an earlier discharge and the case's start, the stay is no index discharge.
  Rate = readmitted / index discharges.
* **Length of stay** — the case's finished stays that ended in the period, per care setting: days from start
  to end (a same-day stay is 0 days); mean and median.
* **Goal attainment** — goals due in the period and no later than ``today`` (a goal cannot have
  failed before it is due), leaving out goals proposed, rejected or cancelled. Attained = achievement
  ``achieved`` or ``sustaining``. Goals without a due date have no deadline to be judged against and
  are not counted.
* **Discharge to follow-up** — for the same index discharges, days to the first monitoring contact
  (any mode) on or after the discharge day; discharges with none are counted apart, not as zero.
* **Referral completion** — referrals authored in the period (drafts left out). Rate = completed /
  referrals that reached an end (completed, failed, cancelled, rejected): open ones are undecided.

``cases`` counts those in case management some day of the period, as their status history tells
(not one closed throughout it and reopened later). Cases ``entered-in-error`` are left out altogether. Rates and averages are ``None`` when nothing
was there to measure, never a misleading 0.

The figures are "as of" ``today``: every case counts as it stood that day (``case_as_of``: stays
and contacts up to it, a stay still running if it ended later, a case not yet begun left out), so
figures for a past day are those that could have been computed on it.
"""

from __future__ import annotations

import datetime as dt
import functools
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

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
from fhir_cm.terminology import mappings_dir, read_rules

__all__ = [
    "Admission",
    "IndexDischarge",
    "OutcomeParts",
    "OutcomeRules",
    "ProgrammeOutcomes",
    "SettingStays",
    "combine_outcomes",
    "compute_outcomes",
    "load_outcome_rules",
    "outcome_parts",
    "patients_to_follow",
    "programme_outcomes",
    "readmission_stays",
]

_ATTAINED = frozenset({GoalAchievement.ACHIEVED, GoalAchievement.SUSTAINING})
_NOT_JUDGED = frozenset({GoalStatus.PROPOSED, GoalStatus.REJECTED, GoalStatus.CANCELLED})
_REFERRAL_ENDS = frozenset(
    {ReferralStatus.COMPLETED, ReferralStatus.FAILED, ReferralStatus.CANCELLED, ReferralStatus.REJECTED}
)
_NOT_A_STAY = frozenset({StayStatus.CANCELLED, StayStatus.PLANNED})
_NOT_IN_CARE = frozenset({CaseStatus.CLOSED, CaseStatus.CANCELLED, CaseStatus.ENTERED_IN_ERROR})


RULES_FILE = "outcome-rules.json"


class OutcomeRules(BaseModel):
    """``mappings/outcome-rules.json``: which stays are a case's (a programme's rule, so data)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    look_back_days: int = Field(ge=0, le=366)


@functools.cache
def load_outcome_rules() -> OutcomeRules:
    """The rules of ``mappings/outcome-rules.json`` (read once per process; the kept parts are per
    process too, so a changed window is applied to every case after a restart).

    ``MappingFileError`` when the file cannot be used: the API reads it when it is made, so a broken
    file stops ``fhir-cm serve`` with its reason instead of failing the first outcomes request."""
    return read_rules(mappings_dir() / RULES_FILE, OutcomeRules)


class SettingStays(BaseModel):
    """Length of stay in one care setting: how many finished stays, mean and median days."""

    model_config = ConfigDict(frozen=True)

    setting: CareSetting
    stays: int
    mean_days: float
    median_days: float


class ProgrammeOutcomes(BaseModel):
    """The outcome figures of one programme over one period (``None`` bounds: open-ended)."""

    model_config = ConfigDict(frozen=True)

    programme: ProgrammeType
    start: dt.date | None
    end: dt.date | None
    cases: int
    hospital_discharges: int
    readmissions_30d: int
    readmission_rate: float | None
    length_of_stay: list[SettingStays]
    goals_due: int
    goals_attained: int
    goal_attainment_rate: float | None
    follow_ups: int
    discharges_without_follow_up: int
    median_days_to_follow_up: float | None
    referrals: int
    referrals_ended: int
    referrals_completed: int
    referral_completion_rate: float | None


def _within(day: dt.date, start: dt.date | None, end: dt.date | None) -> bool:
    return (start is None or day >= start) and (end is None or day <= end)


def _overlaps(case: Case, start: dt.date | None, end: dt.date | None) -> bool:
    """Whether the case was in case management some day of the period. Reopening clears the period's
    end, so the history tells the months between a closure and a reopening apart (the time before a
    history that begins later than the case counts as its first status, as ``case_as_of`` reads it)."""
    if not (
        (end is None or case.period.start <= end)
        and (start is None or case.period.end is None or case.period.end >= start)
    ):
        return False
    return not case.status_history or any(
        entry.status not in _NOT_IN_CARE
        and (end is None or (case.period.start if i == 0 else entry.start) <= end)
        and (start is None or entry.end is None or entry.end >= start)
        for i, entry in enumerate(case.status_history)
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _real_stays(case: Case) -> list[Stay]:
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


def _index_discharges(case: Case, stays: Sequence[Stay], start: dt.date | None, end: dt.date | None) -> list[Stay]:
    return [
        s
        for s in stays
        if s.setting is CareSetting.ACUTE_HOSPITAL
        and s.status is StayStatus.FINISHED
        and s.end is not None
        and _within(s.end, start, end)
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


class Admission(BaseModel):
    """An acute-hospital stay of a patient, with the case holding it: where a discharge of another
    case of the same patient may have been readmitted."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    stay: Stay


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


def outcome_parts(current: Case, *, start: dt.date | None, end: dt.date | None, today: dt.date) -> OutcomeParts:
    """The case's part of its programme's figures over ``start``–``end`` as of ``today``: nothing but
    its programme when it does not count (not begun by then, or entered in error)."""
    case = case_as_of(current, today)
    if case is None or case.status is CaseStatus.ENTERED_IN_ERROR:
        return OutcomeParts(programme=current.programme)
    stays = _real_stays(case)
    lengths = tuple(
        (stay.setting, (stay.end - stay.start).days)
        for stay in stays
        if stay.status is StayStatus.FINISHED
        and stay.end is not None
        and _within(stay.end, start, end)
        and _the_cases(stay, case)
    )
    discharges = [
        IndexDischarge(stay=d, readmitted=_readmitted(d, stays), follow_up_days=_days_to_follow_up(d, case))
        for d in _index_discharges(case, stays, start, end)
    ]
    goals = [
        g
        for g in case.goals
        if g.due is not None and g.status not in _NOT_JUDGED and g.due <= today and _within(g.due, start, end)
    ]
    referrals = [r for r in case.referrals if r.status is not ReferralStatus.DRAFT and _within(r.authored, start, end)]
    return OutcomeParts(
        programme=case.programme,
        case_id=case.id,
        patient_id=case.patient.id,
        case_start=case.period.start,
        index_discharges=tuple(discharges),
        overlaps=_overlaps(case, start, end),
        stays=lengths,
        goals_due=len(goals),
        attained=sum(g.achievement in _ATTAINED for g in goals),
        referrals=len(referrals),
        ended=sum(r.status in _REFERRAL_ENDS for r in referrals),
        completed=sum(r.status is ReferralStatus.COMPLETED for r in referrals),
    )


def patients_to_follow(parts: Iterable[OutcomeParts]) -> set[str]:
    """The patients whose other cases may hold a readmission or the hospital a discharge transferred
    the person to: those with an index discharge. Only those with several cases have any to read."""
    return {p.patient_id for p in parts if p.index_discharges}


def readmission_stays(cases: Iterable[Case], *, today: dt.date, patients: Iterable[str]) -> dict[str, list[Admission]]:
    """The acute-hospital stays of ``patients`` in ``cases``, by patient, each case as it stood on
    ``today`` (a case not begun by then or entered in error holds none): where their discharges'
    readmissions are looked for across cases."""
    wanted = set(patients)
    found: dict[str, list[Admission]] = defaultdict(list)
    for current in cases:
        if current.patient.id not in wanted:
            continue
        case = case_as_of(current, today)
        if case is None or case.status is CaseStatus.ENTERED_IN_ERROR:
            continue
        found[case.patient.id] += [
            Admission(case_id=case.id, stay=s) for s in _real_stays(case) if s.setting is CareSetting.ACUTE_HOSPITAL
        ]
    return dict(found)


def _another_stay(other: Admission, stay: Stay, case_id: str) -> bool:
    """Whether ``other`` is a stay of another case than ``case_id``, and not ``stay`` recorded there too
    (same id, or same start and end)."""
    return (
        other.case_id != case_id
        and other.stay.id != stay.id
        and (other.stay.start, other.stay.end) != (stay.start, stay.end)
    )


def _readmitted_elsewhere(discharge: Stay, case_id: str, admissions: Iterable[Admission]) -> bool:
    """Whether an acute-hospital stay of another case of the patient began 0–30 days after ``discharge``:
    not the same stay recorded in both cases, nor the hospital it transferred the person to."""
    assert discharge.end is not None
    return any(
        _another_stay(other, discharge, case_id)
        and not transferred(discharge, other.stay)
        and 0 <= (other.stay.start - discharge.end).days <= READMISSION_WINDOW_DAYS
        for other in admissions
    )


def _no_index_elsewhere(discharge: Stay, part: OutcomeParts, admissions: Iterable[Admission]) -> bool:
    """Whether an acute-hospital stay of another case of the patient makes ``discharge`` no index
    discharge, as one of the case's own would: it is where ``discharge`` transferred the person (one
    episode of care), or an admission between ``discharge`` and the case's start (the one the referral
    came from: that readmission came before the programme could act)."""
    assert discharge.end is not None
    return any(
        _another_stay(other, discharge, part.case_id)
        and (
            transferred(discharge, other.stay)
            or (part.case_start is not None and discharge.end <= other.stay.start < part.case_start)
        )
        for other in admissions
    )


def programme_outcomes(
    programme: ProgrammeType,
    cases: Iterable[Case],
    *,
    start: dt.date | None,
    end: dt.date | None,
    today: dt.date,
) -> ProgrammeOutcomes:
    """The outcome figures of ``programme`` over ``start``–``end`` (inclusive), as of ``today``.

    Cases of other programmes count for nothing but the readmissions they hold, so callers may pass
    everything they can see.
    """
    if start is not None and end is not None and end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    cases = list(cases)
    parts = [outcome_parts(c, start=start, end=end, today=today) for c in cases if c.programme is programme]
    elsewhere = readmission_stays(cases, today=today, patients=patients_to_follow(parts))
    return combine_outcomes(programme, parts, start=start, end=end, elsewhere=elsewhere)


def combine_outcomes(
    programme: ProgrammeType,
    parts: Iterable[OutcomeParts],
    *,
    start: dt.date | None,
    end: dt.date | None,
    elsewhere: Mapping[str, Sequence[Admission]] | None = None,
) -> ProgrammeOutcomes:
    """The figures of ``programme`` from its cases' parts (parts of other programmes are ignored), and
    ``elsewhere``: the acute-hospital stays of the patients ``patients_to_follow`` names
    (``readmission_stays``), where a discharge of one case is readmitted into another."""
    mine = [p for p in parts if p.programme is programme]
    elsewhere = elsewhere or {}
    counted = [
        (p, d)
        for p in mine
        for d in p.index_discharges
        if not _no_index_elsewhere(d.stay, p, elsewhere.get(p.patient_id, ()))
    ]
    discharges = len(counted)
    readmitted = sum(
        d.readmitted or _readmitted_elsewhere(d.stay, p.case_id, elsewhere.get(p.patient_id, ())) for p, d in counted
    )
    goals_due = sum(p.goals_due for p in mine)
    attained = sum(p.attained for p in mine)
    ended = sum(p.ended for p in mine)
    completed = sum(p.completed for p in mine)
    los: dict[CareSetting, list[int]] = defaultdict(list)
    for p in mine:
        for setting, days in p.stays:
            los[setting].append(days)
    follow_up_days = [d.follow_up_days for _, d in counted if d.follow_up_days is not None]
    return ProgrammeOutcomes(
        programme=programme,
        start=start,
        end=end,
        cases=sum(p.overlaps for p in mine),
        hospital_discharges=discharges,
        readmissions_30d=readmitted,
        readmission_rate=_rate(readmitted, discharges),
        length_of_stay=[
            SettingStays(
                setting=setting,
                stays=len(days),
                mean_days=round(statistics.fmean(days), 2),
                median_days=float(statistics.median(days)),
            )
            for setting, days in sorted(los.items(), key=lambda item: item[0].value)
        ],
        goals_due=goals_due,
        goals_attained=attained,
        goal_attainment_rate=_rate(attained, goals_due),
        follow_ups=len(follow_up_days),
        discharges_without_follow_up=sum(d.follow_up_days is None for _, d in counted),
        median_days_to_follow_up=float(statistics.median(follow_up_days)) if follow_up_days else None,
        referrals=sum(p.referrals for p in mine),
        referrals_ended=ended,
        referrals_completed=completed,
        referral_completion_rate=_rate(completed, ended),
    )


def compute_outcomes(
    cases: Iterable[Case],
    *,
    start: dt.date | None,
    end: dt.date | None,
    today: dt.date,
    programmes: Iterable[ProgrammeType] | None = None,
) -> list[ProgrammeOutcomes]:
    """Outcome figures per programme: those asked for, or else every programme the cases belong to."""
    cases = list(cases)
    wanted = list(dict.fromkeys(programmes)) if programmes is not None else sorted({c.programme for c in cases})
    return [programme_outcomes(p, cases, start=start, end=end, today=today) for p in wanted]
