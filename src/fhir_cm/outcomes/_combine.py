"""A programme's figures from its cases' parts, and the readmissions and transfers found across a
patient's cases (the rules are the package's docstring's)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from fhir_cm.domain import (
    READMISSION_WINDOW_DAYS,
    CareSetting,
    Case,
    CaseStatus,
    ProgrammeType,
    Stay,
    case_as_of,
    transferred,
)

from ._case import OutcomeParts, outcome_parts, real_stays

__all__ = [
    "Admission",
    "ProgrammeOutcomes",
    "SettingStays",
    "combine_outcomes",
    "compute_outcomes",
    "patients_to_follow",
    "programme_outcomes",
    "readmission_stays",
]


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


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class Admission(BaseModel):
    """An acute-hospital stay of a patient, with the case holding it: where a discharge of another
    case of the same patient may have been readmitted."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    stay: Stay


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
            Admission(case_id=case.id, stay=s) for s in real_stays(case) if s.setting is CareSetting.ACUTE_HOSPITAL
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
