"""What can be true of a case, beyond its shape: the rules a case manager's data must keep to be trusted.

The model's own validators check that a case hangs together (ids, references, ordered periods).
These rules check that it could have happened: nothing recorded as done (a goal achieved: its start)
lies in the future, no date is centuries away, a person is in one inpatient place at a time, and an
open case has not ended.
They depend on the day they are checked on and on tolerances that are configuration, so they are a
function over a case rather than part of the model: a case that broke one when it was imported is
still readable (and reported by ``fhir-cm check``), while every new change is held to them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from itertools import combinations

from pydantic import BaseModel, ConfigDict, Field

from ._case import Case
from ._models import Stay
from ._types import CareSetting, CaseStatus, GoalAchievement, StayStatus
from ..errors import FhirCmError

__all__ = [
    "INPATIENT_SETTINGS",
    "Breach",
    "ImplausibleCase",
    "Plausibility",
    "case_breaches",
    "check_plausible",
    "new_breaches",
]

#: Settings a person stays in overnight and cannot be in two of at once.
INPATIENT_SETTINGS = frozenset(
    {
        CareSetting.ACUTE_HOSPITAL,
        CareSetting.PSYCHIATRIC,
        CareSetting.SKILLED_NURSING,
        CareSetting.INPATIENT_REHABILITATION,
        CareSetting.LONG_TERM_CARE,
    }
)


class Plausibility(BaseModel):
    """The day the rules are checked on, and how much of the future and the past they accept.

    ``future_tolerance_days`` lets a record be dated a little after today, because the person
    entering it may be in a time zone already past midnight. Dates before ``earliest`` or more
    than ``horizon_years`` after today (a goal due, a planned stay) are typing errors, not plans.
    """

    model_config = ConfigDict(frozen=True)

    today: dt.date
    future_tolerance_days: int = Field(default=1, ge=0, le=366)
    earliest: dt.date = dt.date(1900, 1, 1)
    horizon_years: int = Field(default=10, ge=0, le=100)

    @property
    def latest_done(self) -> dt.date:
        """The last day something can have been done on."""
        return _plus_days(self.today, self.future_tolerance_days)

    @property
    def latest(self) -> dt.date:
        """The last day anything (a due date, a planned stay) can plausibly be set for."""
        return _plus_days(self.today, round(self.horizon_years * 365.25))


def _plus_days(day: dt.date, n: int) -> dt.date:
    return day + dt.timedelta(days=n) if (dt.date.max - day).days > n else dt.date.max


class Breach(BaseModel):
    """One rule a case breaks: where (``field``, a dotted path into the case), which rule, and why.

    Messages name fields, entity ids and the rule, never the value that broke it: they end up in
    API answers and quarantine reasons.
    """

    model_config = ConfigDict(frozen=True)

    rule: str = Field(description="future-date, implausible-date, overlapping-stays or open-case-ended.")
    field: str = Field(description="Where in the case, e.g. 'contacts.3.date'.")
    entity: str | None = Field(default=None, description="The id of the entity the field belongs to.")
    message: str
    identity: tuple[str, ...] = Field(
        default=(), exclude=True, description="What makes it the same breach in another revision of the case."
    )

    def line(self) -> str:
        """The breach in one line: where, and what is wrong."""
        return f"{self.field}: {self.message}"


class ImplausibleCase(FhirCmError, ValueError):
    """A case (or a change to one) breaks rules of what can be true; ``breaches`` says which."""

    def __init__(self, breaches: list[Breach]) -> None:
        self.breaches = breaches
        super().__init__("; ".join(b.line() for b in breaches))


# --- the dates of a case -----------------------------------------------------------------------------

#: Achievements that say a goal was reached, which it cannot have been before it started.
_REACHED = frozenset({GoalAchievement.ACHIEVED, GoalAchievement.SUSTAINING})


class _Dated(BaseModel):
    """One date of a case, where it is, and whether it records something already done."""

    path: tuple[str | int, ...]
    entity: str | None
    what: str
    day: dt.date
    done: bool


def _dates(case: Case) -> Iterator[_Dated]:
    ended = case.status in (CaseStatus.CLOSED, CaseStatus.CANCELLED)
    yield _Dated(path=("period", "start"), entity=None, what="the case's start", day=case.period.start, done=True)
    if case.period.end is not None:
        yield _Dated(path=("period", "end"), entity=None, what="the case's end", day=case.period.end, done=ended)
    for i, h in enumerate(case.status_history):
        yield _Dated(path=("status_history", i, "start"), entity=None, what="a status change", day=h.start, done=True)
        if h.end is not None:
            yield _Dated(path=("status_history", i, "end"), entity=None, what="a status change", day=h.end, done=True)
    for i, n in enumerate(case.needs):
        yield _Dated(path=("needs", i, "recorded"), entity=n.id, what="a need's recording", day=n.recorded, done=True)
        if n.resolved is not None:
            yield _Dated(
                path=("needs", i, "resolved"), entity=n.id, what="a need's resolution", day=n.resolved, done=True
            )
    for i, g in enumerate(case.goals):
        if g.start is not None:  # a goal reached has begun: its start is past
            reached = g.achievement in _REACHED
            what = "an achieved goal's start" if reached else "a goal's start"
            yield _Dated(path=("goals", i, "start"), entity=g.id, what=what, day=g.start, done=reached)
        if g.due is not None:
            yield _Dated(path=("goals", i, "due"), entity=g.id, what="a goal's due", day=g.due, done=False)
    for i, r in enumerate(case.referrals):
        yield _Dated(path=("referrals", i, "authored"), entity=r.id, what="a referral", day=r.authored, done=True)
        if r.due is not None:
            yield _Dated(path=("referrals", i, "due"), entity=r.id, what="a referral's due date", day=r.due, done=False)
    for i, m in enumerate(case.team):
        for name in ("start", "end"):
            if (day := getattr(m, name)) is not None:
                yield _Dated(
                    path=("team", i, name), entity=m.id, what=f"a team membership's {name}", day=day, done=False
                )
    for i, c in enumerate(case.contacts):
        yield _Dated(path=("contacts", i, "date"), entity=c.id, what="a contact", day=c.date, done=True)
    for i, s in enumerate(case.stays):
        real = s.status in (StayStatus.IN_PROGRESS, StayStatus.FINISHED)
        yield _Dated(path=("stays", i, "start"), entity=s.id, what="a stay's start", day=s.start, done=real)
        if s.end is not None:
            yield _Dated(
                path=("stays", i, "end"),
                entity=s.id,
                what="a stay's end",
                day=s.end,
                done=s.status is StayStatus.FINISHED,
            )


def _field(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


def _identity(rule: str, d: _Dated) -> tuple[str, ...]:
    # Entities by id, not by position: the same breach keeps its identity when a list is reordered.
    names = tuple(str(p) for p in d.path if not isinstance(p, int))
    return (rule, *names, d.entity or "", d.day.isoformat())


def _date_breaches(case: Case, rules: Plausibility) -> Iterator[Breach]:
    for d in _dates(case):
        if not rules.earliest <= d.day <= rules.latest:
            yield Breach(
                rule="implausible-date", field=_field(d.path), entity=d.entity, identity=_identity("range", d),
                message=f"{d.what} must be between {rules.earliest} and {rules.latest}",
            )  # fmt: skip
        elif d.done and d.day > rules.latest_done:
            yield Breach(
                rule="future-date", field=_field(d.path), entity=d.entity, identity=_identity("future", d),
                message=f"{d.what} records something done, so it cannot be after today ({rules.today}; "
                f"tolerance {rules.future_tolerance_days} {'day' if rules.future_tolerance_days == 1 else 'days'})",
            )  # fmt: skip


def _overlap_breaches(case: Case) -> Iterator[Breach]:
    stays = [
        (i, s)
        for i, s in enumerate(case.stays)
        if s.setting in INPATIENT_SETTINGS and s.status in (StayStatus.IN_PROGRESS, StayStatus.FINISHED)
    ]
    for (i, a), (j, b) in combinations(stays, 2):
        # Stays touching on one day are a transfer (out of one, into the next the same day), not an overlap.
        a_end, b_end = a.end or dt.date.max, b.end or dt.date.max
        if a.start < b_end and b.start < a_end:
            later_i, later, other = (j, b, a) if (b.start, j) >= (a.start, i) else (i, a, b)
            yield Breach(
                rule="overlapping-stays", field=f"stays.{later_i}.start", entity=later.id,
                identity=("overlap", *sorted((_stay_key(a), _stay_key(b)))),
                message=f"the stay overlaps inpatient stay {other.id}: a person is in one inpatient place at a time",
            )  # fmt: skip


def _stay_key(stay: Stay) -> str:
    return f"{stay.id}:{stay.start}:{stay.end}"


def _period_breaches(case: Case, rules: Plausibility) -> Iterator[Breach]:
    if case.is_open and case.period.end is not None and case.period.end <= rules.today:
        yield Breach(
            rule="open-case-ended", field="period.end", identity=("open-ended", case.status.value),
            message=f"a case that is '{case.status}' is open, so it cannot have ended: reopening clears the end",
        )  # fmt: skip


def case_breaches(case: Case, rules: Plausibility) -> list[Breach]:
    """Every rule ``case`` breaks, as of ``rules.today``: dates, overlapping stays, an open case that ended."""
    return [*_date_breaches(case, rules), *_overlap_breaches(case), *_period_breaches(case, rules)]


def new_breaches(before: Case | None, after: Case, rules: Plausibility) -> list[Breach]:
    """The breaches ``after`` has that ``before`` did not: what a change would introduce.

    A case imported with a breach stays workable (another contact can still be added to it); only
    the change that brings a breach in, or touches the data of one, is held to the rules.
    """
    old = {b.identity for b in case_breaches(before, rules)} if before is not None else set()
    return [b for b in case_breaches(after, rules) if b.identity not in old]


def check_plausible(case: Case, rules: Plausibility, *, before: Case | None = None) -> None:
    """Raise :class:`ImplausibleCase` if ``case`` brings in a breach that ``before`` (if given) did not have."""
    breaches = new_breaches(before, case, rules)
    if breaches:
        raise ImplausibleCase(breaches)
