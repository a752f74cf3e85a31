"""Worklist: what is due from a case manager, across their open cases, on the morning they open it.

Case-management products open on such a list (outreach tasks with due dates, follow-ups, review
cycles). Here no task is stored beside the case: every item is read off what a case already records,
so the list can neither drift from the cases nor hold a duty nobody can trace back —

* **referral-due**: a referral still under way whose due day (the ServiceRequest's occurrence) comes
  within a few days or has passed;
* **referral-no-reply**: a referral still ``requested`` — neither accepted nor rejected — longer than
  the days a reply is expected in, counted from the day it was made;
* **transition-follow-up**: the follow-up of a move between care settings (the ``follow-up`` referral
  made for the stay that was left — the transitions tracker makes one for every hospital discharge),
  still not done, due within a few days or overdue;
* **goal-past-due**: a goal of the plan past its due day and not attained;
* **no-face-to-face**: an open case not seen face to face for longer than its acuity allows (never
  seen: counted from the day it first became active).

Which case statuses list which kind, and every number, are rules kept as data
(``mappings/worklist-rules.json``). An item is due on a day and overdue from the day after. Each case
counts as it stands at the end of the day (``case_as_of``: its status and case manager from their
histories, a closure dated ahead by a case manager's time zone not yet in force), the same reading as
the caseload's. Pure functions over the domain: the API keeps each case's part by revision and combines
the parts per request (``api._parts``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Iterable, Iterator
from enum import StrEnum
from functools import cached_property
from operator import itemgetter
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fhir_cm.domain import (
    Acuity,
    Case,
    CaseStatus,
    ContactMode,
    GoalAchievement,
    GoalStatus,
    ProgrammeType,
    Referral,
    ReferralKind,
    ReferralStatus,
    Transition,
    case_as_of,
)
from fhir_cm.terminology import mappings_dir, read_rules

__all__ = [
    "RULES_FILE",
    "ItemKind",
    "Subject",
    "WorklistItem",
    "WorklistPart",
    "WorklistRules",
    "case_items",
    "compute_worklist",
    "load_worklist_rules",
    "order_key",
    "select_items",
    "worklist_part",
]

RULES_FILE = "worklist-rules.json"


class ItemKind(StrEnum):
    """What kind of duty an item is (see the module docstring)."""

    REFERRAL_DUE = "referral-due"
    REFERRAL_NO_REPLY = "referral-no-reply"
    TRANSITION_FOLLOW_UP = "transition-follow-up"
    GOAL_PAST_DUE = "goal-past-due"
    NO_FACE_TO_FACE = "no-face-to-face"


#: The order of kinds on one day: what others wait on first.
_RANK = {kind: i for i, kind in enumerate(ItemKind)}


class Subject(StrEnum):
    """What in the case an item is about: ``subject_id`` is that referral's or goal's id, or the case's."""

    REFERRAL = "referral"
    GOAL = "goal"
    CASE = "case"


class WorklistItem(BaseModel):
    """One thing due from the case manager: in which case, what, by when, and whether it is overdue."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    kind: ItemKind
    what: str = Field(description="What is due, in words.")
    due: dt.date
    overdue: bool = Field(description="The due day has passed (an item is due on its day, overdue from the next).")
    since: dt.date | None = Field(
        default=None,
        description="When the wait began: the referral's request (no reply), the move (follow-up), the last "
        "face-to-face contact (none: never seen).",
    )
    subject: Subject
    subject_id: str = Field(description="The id of the referral or goal in the case (the case's own id for a visit).")
    programme: ProgrammeType
    case_status: CaseStatus
    case_manager: str | None
    case_manager_name: str | None = None
    #: The server the case manager's record is on, when it is another server's (an outside party):
    #: ``case_manager`` is then None, for they are no local case manager.
    case_manager_server: str | None = None
    sources: dict[str, tuple[str, str, str]] = Field(
        default_factory=dict,
        exclude=True,
        description="Where each date of the item was read in the case: JSON pointer into the item → the case's "
        "list, the entity's id there and its field (`/due` → goals, g-1, due), for saying it as written.",
    )
    dates_as_written: dict[str, str] = Field(
        default_factory=dict,
        description="Each date of the item its source wrote as a year or a month, by JSON pointer into the item "
        "(`/due`) → the date as written ('2025-09'): a goal due '2025-09' is held as due by 2025-09-30.",
    )


class WorklistPart(BaseModel):
    """What one case adds to the worklists: its case manager on the day, its programme, and its items."""

    model_config = ConfigDict(frozen=True)

    case_manager: str | None
    programme: ProgrammeType
    items: tuple[WorklistItem, ...]

    @cached_property
    def order(self) -> tuple[str, ...]:
        """Each item's place in a worklist (``order_key``), worked out once for as long as the part is kept:
        a worklist of every case sorted every item by a key built per item each time, after any change."""
        return tuple(order_key(item) for item in self.items)


# --- the rules (mappings/worklist-rules.json) -----------------------------------------------------------


class _KindRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    case_statuses: frozenset[CaseStatus] = Field(description="The case statuses the kind is listed for.")


class DatedRule(_KindRule):
    """A referral due, a follow-up after a move: listed from ``look_ahead_days`` before the due day."""

    referral_statuses: frozenset[ReferralStatus]
    look_ahead_days: int = Field(ge=0, le=366)


class NoReplyRule(_KindRule):
    """A referral in one of ``referral_statuses`` longer than ``reply_within_days`` since it was made."""

    referral_statuses: frozenset[ReferralStatus]
    reply_within_days: int = Field(ge=0, le=366)


class GoalRule(_KindRule):
    """A goal in one of ``goal_statuses`` past its due day whose achievement is not one of ``attained``."""

    goal_statuses: frozenset[GoalStatus]
    attained: frozenset[GoalAchievement]


class FaceToFaceRule(_KindRule):
    """A case not seen face to face for longer than ``within_days`` of its acuity."""

    within_days: dict[Acuity, Annotated[int, Field(ge=0, le=3660)]]

    @model_validator(mode="after")
    def _every_acuity(self) -> Self:
        missing = [a.value for a in Acuity if a not in self.within_days]
        if missing:
            raise ValueError(f"within_days names no number of days for acuity {', '.join(missing)}")
        return self


class WorklistRules(BaseModel):
    """``mappings/worklist-rules.json``: which kinds are listed for which cases, and when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    referral_due: DatedRule
    referral_no_reply: NoReplyRule
    transition_follow_up: DatedRule
    goal_past_due: GoalRule
    no_face_to_face: FaceToFaceRule


@functools.cache
def load_worklist_rules() -> WorklistRules:
    """The rules of ``mappings/worklist-rules.json``, read once per process (the API's kept parts are per
    process too: a change is applied after a restart). ``MappingFileError`` when the file cannot be used:
    the API reads it when it is made, so ``fhir-cm serve`` stops with the reason."""
    return read_rules(mappings_dir() / RULES_FILE, WorklistRules)


# --- one case ----------------------------------------------------------------------------------------------


def worklist_part(current: Case, today: dt.date, rules: WorklistRules) -> WorklistPart | None:
    """The case's items on ``today``, as it stands then; None when it is not open then or nothing is due."""
    case = case_as_of(current, today)
    if case is None or not case.is_open:
        return None
    items = case_items(case, today, rules)
    if not items:
        return None
    # Another server's practitioner of the same id is not the local one: such a case is no local
    # case manager's, and a supervisor sees it with the server it is managed from.
    manager = _local_manager(case)
    return WorklistPart(case_manager=manager, programme=case.programme, items=tuple(items))


def _local_manager(case: Case) -> str | None:
    manager = case.case_manager
    return manager.id if manager is not None and not manager.outside else None


def case_items(case: Case, today: dt.date, rules: WorklistRules) -> list[WorklistItem]:
    """What ``case`` (as it stands on ``today``) asks of its case manager on ``today``, earliest due first."""
    made = _Maker(case, today)
    items = [*_referral_items(case, today, rules, made), *_goal_items(case, today, rules, made)]
    items += _visit_items(case, today, rules, made)
    return sorted(items, key=_order)


class _Maker:
    """Items of one case on one day: the fields every item of the case shares filled in once."""

    def __init__(self, case: Case, today: dt.date) -> None:
        self._case = case
        self._today = today

    def __call__(
        self,
        kind: ItemKind,
        what: str,
        due: dt.date,
        subject: Subject,
        subject_id: str,
        *,
        since: dt.date | None = None,
        sources: dict[str, tuple[str, str, str]],
    ) -> WorklistItem:
        manager = self._case.case_manager
        return WorklistItem(
            case_id=self._case.id,
            programme=self._case.programme,
            case_status=self._case.status,
            case_manager=_local_manager(self._case),
            case_manager_name=manager.name if manager else None,
            case_manager_server=manager.server if manager else None,
            kind=kind,
            what=what,
            due=due,
            overdue=due < self._today,
            since=since,
            subject=subject,
            subject_id=subject_id,
            sources=sources,
        )


def _words(code: str) -> str:
    return code.replace("-", " ")


def _referral_items(case: Case, today: dt.date, rules: WorklistRules, made: _Maker) -> Iterator[WorklistItem]:
    left: dict[str, Transition] = {}
    for t in case.transitions:
        if t.from_stay is not None:
            left.setdefault(t.from_stay, t)
    for r in case.referrals:
        move = left.get(r.for_stay) if r.kind is ReferralKind.FOLLOW_UP and r.for_stay is not None else None
        if move is not None:  # the follow-up of a move is that move's item, never also a referral's
            yield from _follow_up(case, r, move, today, rules.transition_follow_up, made)
        else:
            yield from _due(case, r, today, rules.referral_due, made)
            yield from _no_reply(case, r, today, rules.referral_no_reply, made)


def _due(case: Case, r: Referral, today: dt.date, rule: DatedRule, made: _Maker) -> Iterator[WorklistItem]:
    """``r``'s due day, once it is ``look_ahead_days`` away or nearer, while ``r`` is under way."""
    if r.due is None or case.status not in rule.case_statuses or r.status not in rule.referral_statuses:
        return
    if r.due <= today + dt.timedelta(days=rule.look_ahead_days):
        what = f"{_words(r.kind).capitalize()} referral due: {r.service}"
        yield made(
            ItemKind.REFERRAL_DUE, what, r.due, Subject.REFERRAL, r.id, sources={"/due": ("referrals", r.id, "due")}
        )


def _no_reply(case: Case, r: Referral, today: dt.date, rule: NoReplyRule, made: _Maker) -> Iterator[WorklistItem]:
    """``r`` still waiting for a reply ``reply_within_days`` after it was made. A post-discharge follow-up
    (made for a stay) is the case manager's own to do: nobody is asked, nobody is to reply."""
    if r.for_stay is not None or case.status not in rule.case_statuses or r.status not in rule.referral_statuses:
        return
    reply_by = r.authored + dt.timedelta(days=rule.reply_within_days)
    if reply_by < today:
        what = f"No reply yet to the {_words(r.kind)} referral: {r.service}"
        sources = {"/since": ("referrals", r.id, "authored")}
        yield made(
            ItemKind.REFERRAL_NO_REPLY, what, reply_by, Subject.REFERRAL, r.id, since=r.authored, sources=sources
        )


def _follow_up(
    case: Case, r: Referral, move: Transition, today: dt.date, rule: DatedRule, made: _Maker
) -> Iterator[WorklistItem]:
    """The follow-up of ``move`` that ``r`` asks for (due on its due day, else the day it was made, as the
    transition's ``follow_up_due`` reads it), while ``r`` is not done."""
    due = r.due or r.authored
    if case.status not in rule.case_statuses or r.status not in rule.referral_statuses:
        return
    if due > today + dt.timedelta(days=rule.look_ahead_days):
        return
    sources = {"/due": ("referrals", r.id, "due" if r.due else "authored")}
    # The move's day is the day the stay left ended, or the day the next one began.
    if r.for_stay is not None and any(s.id == r.for_stay and s.end == move.date for s in case.stays):
        sources["/since"] = ("stays", r.for_stay, "end")
    elif move.to_stay is not None:
        sources["/since"] = ("stays", move.to_stay, "start")
    yield made(
        ItemKind.TRANSITION_FOLLOW_UP,
        f"Follow-up after the move from {_words(move.from_setting)} to {_words(move.to_setting)}",
        due,
        Subject.REFERRAL,
        r.id,
        since=move.date,
        sources=sources,
    )


def _goal_items(case: Case, today: dt.date, rules: WorklistRules, made: _Maker) -> Iterator[WorklistItem]:
    rule = rules.goal_past_due
    if case.status not in rule.case_statuses:
        return
    for g in case.goals:
        if g.due is None or g.due >= today or g.status not in rule.goal_statuses or g.achievement in rule.attained:
            continue
        what = f"{'Self-care goal' if g.self_care else 'Goal'} not attained: {g.description}"
        yield made(ItemKind.GOAL_PAST_DUE, what, g.due, Subject.GOAL, g.id, sources={"/due": ("goals", g.id, "due")})


def _visit_items(case: Case, today: dt.date, rules: WorklistRules, made: _Maker) -> list[WorklistItem]:
    """A visit overdue: the last face-to-face contact (none: the day the case first became active) longer
    ago than the case's acuity allows."""
    rule = rules.no_face_to_face
    if case.status not in rule.case_statuses:
        return []
    seen = [c for c in case.contacts if c.mode is ContactMode.FACE_TO_FACE]
    last = max(seen, key=lambda c: c.date, default=None)
    began = min((h.start for h in case.status_history if h.status is CaseStatus.ACTIVE), default=case.period.start)
    due = (last.date if last else began) + dt.timedelta(days=rule.within_days[case.acuity])
    if due >= today:
        return []
    what = f"No face-to-face contact for {(today - last.date).days} days" if last else "Not seen face to face yet"
    sources: dict[str, tuple[str, str, str]] = {"/since": ("contacts", last.id, "date")} if last else {}
    return [
        made(
            ItemKind.NO_FACE_TO_FACE,
            what,
            due,
            Subject.CASE,
            case.id,
            since=last.date if last else None,
            sources=sources,
        )
    ]


# --- many cases --------------------------------------------------------------------------------------------


def _order(item: WorklistItem) -> tuple[dt.date, str, int, str]:
    return (item.due, item.case_id, _RANK[item.kind], item.subject_id)


def order_key(item: WorklistItem) -> str:
    """``item``'s place in a worklist as one string, ordered as its due day, case, kind and subject are
    (``_order``): strings compare in one step where tuples compare field by field. The fields are
    joined by NUL, which no id holds and every other character sorts after, and a day has a fixed width."""
    return f"{item.due.isoformat()}\x00{item.case_id}\x00{_RANK[item.kind]:03d}\x00{item.subject_id}"


def select_items(
    parts: Iterable[WorklistPart],
    *,
    case_managers: Collection[str | None] | None = None,
    programme: ProgrammeType | None = None,
    kinds: Collection[ItemKind] | None = None,
    overdue_only: bool = False,
    due_before: dt.date | None = None,
) -> list[WorklistItem]:
    """The items of the parts whose case manager is one of ``case_managers`` (None: every part, those
    of cases with none too), of ``programme`` (None: any), of ``kinds`` (None: all), overdue only or not,
    due before a day or not; earliest due first, then by case, kind and subject, so pages cut the same
    list every time."""
    keyed = [
        (key, item)
        for part in parts
        if (case_managers is None or part.case_manager in case_managers)
        and (programme is None or part.programme is programme)
        for key, item in zip(part.order, part.items, strict=True)
        if (kinds is None or item.kind in kinds)
        and (not overdue_only or item.overdue)
        and (due_before is None or item.due < due_before)
    ]
    keyed.sort(key=itemgetter(0))
    return [item for _, item in keyed]


def compute_worklist(
    cases: Iterable[Case],
    today: dt.date,
    rules: WorklistRules,
    *,
    case_managers: Collection[str | None] | None = None,
    programme: ProgrammeType | None = None,
    kinds: Collection[ItemKind] | None = None,
    overdue_only: bool = False,
    due_before: dt.date | None = None,
) -> list[WorklistItem]:
    """The worklist over ``cases`` on ``today``: :func:`select_items` of their :func:`worklist_part`."""
    return select_items(
        [p for c in cases if (p := worklist_part(c, today, rules)) is not None],
        case_managers=case_managers,
        programme=programme,
        kinds=kinds,
        overdue_only=overdue_only,
        due_before=due_before,
    )
