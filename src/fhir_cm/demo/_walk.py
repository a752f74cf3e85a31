"""Walking a journey through the case-management cycle, one valid case per step."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..domain import (
    CareSetting,
    Case,
    CaseStatus,
    ContactMode,
    GoalAchievement,
    GoalStatus,
    Period,
    Referral,
    ReferralStatus,
    StatusChange,
    Stay,
    StayStatus,
    TeamRole,
    move_referral,
)
from ._text import _n, _who

_RS = ReferralStatus
#: How a referral walks from ``requested`` to where its journey left it, one allowed move at a time.
_REFERRAL_PATH: dict[ReferralStatus, tuple[ReferralStatus, ...]] = {
    _RS.DRAFT: (),
    _RS.REQUESTED: (),
    _RS.ACCEPTED: (_RS.ACCEPTED,),
    _RS.REJECTED: (_RS.REJECTED,),
    _RS.IN_PROGRESS: (_RS.ACCEPTED, _RS.IN_PROGRESS),
    _RS.ON_HOLD: (_RS.ACCEPTED, _RS.IN_PROGRESS, _RS.ON_HOLD),
    _RS.COMPLETED: (_RS.ACCEPTED, _RS.IN_PROGRESS, _RS.COMPLETED),
    _RS.CANCELLED: (_RS.CANCELLED,),
    _RS.FAILED: (_RS.ACCEPTED, _RS.IN_PROGRESS, _RS.FAILED),
}
_ENDED = (CaseStatus.CLOSED, CaseStatus.CANCELLED)


@dataclass(frozen=True)
class WalkStep:
    """One saved step of a walk: the cycle stage, what it did in words (no PHI), and the case after it."""

    stage: str
    detail: str
    case: Case


#: The stages of the cycle, in order, as the summary names them.
STAGES = (
    "identified",
    "enrolled",
    "assessed",
    "planned",
    "referred",
    "team",
    "monitored",
    "transitions",
    "evaluated",
    "closed",
)


def _build(case: Case, **changes: Any) -> Case:
    """``case`` with ``changes``, validated as a whole: every step must be a valid case."""
    return Case.model_validate({**case.model_dump(), **changes})


def _in_order(final: Sequence[Any], current: Iterable[Any]) -> list[Any]:
    """The entities of ``current`` in the order ``final`` has them (so the walk ends equal to the journey)."""
    by_id = {e.id: e for e in current}
    return [by_id[e.id] for e in final if e.id in by_id]


def _as_seen_on(stay: Stay, day: dt.date) -> Stay:
    """A stay as it stood on ``day``: still running (no end, no disposition) if it ended later."""
    if stay.end is None or stay.end <= day:
        return stay
    return stay.model_copy(update={"status": StayStatus.IN_PROGRESS, "end": None, "discharge_disposition": None})


def _history(final: Case) -> list[StatusChange]:
    return list(final.status_history) or [StatusChange(status=final.status, start=final.period.start)]


def _change(case: Case, change: StatusChange) -> Case:
    moved = case.model_copy(deep=True)
    moved.change_status(change.status, change.start, change.reason)
    return moved


def _referral_rounds(finals: Sequence[Referral]) -> Iterator[tuple[str, list[Referral]]]:
    """The referrals as requested (or drafted), then after each round of moves, with what the round did."""
    paths = {r.id: _REFERRAL_PATH[r.status] for r in finals}
    current = [
        r.model_copy(update={"status": _RS.DRAFT if r.status is _RS.DRAFT else _RS.REQUESTED, "status_reason": None})
        for r in finals
    ]
    drafted = sum(r.status is _RS.DRAFT for r in current)
    yield f"{len(current) - drafted} requested" + (f", {drafted} drafted" if drafted else ""), current
    final_by_id = {r.id: r for r in finals}
    for round_no in range(max((len(p) for p in paths.values()), default=0)):
        moved: Counter[str] = Counter()
        nxt = []
        for r in current:
            path = paths[r.id]
            if round_no < len(path):
                last = round_no == len(path) - 1
                r = move_referral(r, path[round_no], final_by_id[r.id].status_reason if last else None)
                moved[r.status.value] += 1
            nxt.append(r)
        current = nxt
        yield ", ".join(f"{n} {status}" for status, n in sorted(moved.items())), current


def walk_case(final: Case) -> Iterator[WalkStep]:
    """The steps that take a new case to ``final`` through the case-management cycle, one valid case each.

    ``final`` is a complete journey (as ``fhir_cm.synthetic`` makes them); the last step yields a case
    equal to it. Every step changes the case (so each save is a new revision); stages with nothing
    to do for this case (no referrals, still open) are left out.
    """
    previous: Case | None = None
    for step in _steps(final):
        if step.case != previous:
            yield step
            previous = step.case


def _steps(final: Case) -> Iterator[WalkStep]:
    history = _history(final)
    start = final.period.start
    first_active = next((i for i, h in enumerate(history) if h.status is CaseStatus.ACTIVE), None)
    closing = len(history) - 1 if history[-1].status in _ENDED and len(history) > 1 else None
    enrolment = history[1 : (first_active + 1) if first_active is not None else (closing or len(history))]
    middle = history[1 + len(enrolment) : closing if closing is not None else len(history)]

    # 1. identification: hospital use up to the referral, and why the person qualifies.
    seen = [_as_seen_on(s, start) for s in final.stays if s.start <= start]
    case = Case(
        id=final.id,
        programme=final.programme,
        status=history[0].status,
        status_history=[history[0].model_copy(update={"end": None})],
        period=Period(start=start),
        patient=final.patient,
        referral_source=final.referral_source,
        eligibility=final.eligibility,
        acuity=final.acuity,
        stays=seen,
    )
    admissions = sum(s.setting in (CareSetting.ACUTE_HOSPITAL, CareSetting.PSYCHIATRIC) for s in seen)
    visits = sum(s.setting is CareSetting.EMERGENCY for s in seen)
    why = ", ".join(e.value for e in final.eligibility) or "-"
    yield WalkStep(
        "identified", f"{_n(admissions, 'admission')}, {_n(visits, 'ED visit')} on record; eligible: {why}", case
    )

    # 2. enrolment: referred → (waitlist) → active, a case manager takes the case on.
    for change in enrolment:
        case = _change(case, change)
    managers = [m for m in final.team if m.role is TeamRole.CASE_MANAGER]
    first_team = [m for m in final.team if m.role is TeamRole.PATIENT or (managers and m.id == managers[0].id)]
    manager = managers[0].party if managers else final.case_manager
    case = _build(case, case_manager=manager, team=[m.model_copy(update={"end": None}) for m in first_team])
    path = " → ".join(h.status.value for h in (history[0], *enrolment))
    who = f"case manager {_who(manager)}" if manager else "no case manager yet"
    yield WalkStep("enrolled", f"{path}; {who}", case)

    # 3. assessment: the needs found (resolved only at evaluation).
    if final.needs:
        needs = [n.model_copy(update={"resolved": None}) for n in final.needs]
        case = _build(case, needs=needs)
        domains = ", ".join(sorted({n.domain.value for n in needs}))
        yield WalkStep("assessed", f"{_n(len(needs), 'need')} ({domains})", case)

    # 4. planning: goals as agreed (outcomes come at evaluation) and the plan in words.
    if final.goals or final.plan_summary:
        goals = [
            g.model_copy(
                update={
                    "status": g.status if g.status in (GoalStatus.PROPOSED, GoalStatus.ACCEPTED) else GoalStatus.ACTIVE,
                    "achievement": None if g.achievement is None else GoalAchievement.IN_PROGRESS,
                }
            )
            for g in final.goals
        ]
        case = _build(case, goals=goals, plan_summary=final.plan_summary)
        own = sum(g.self_care for g in goals)
        yield WalkStep("planned", f"{_n(len(goals), 'goal')} ({own} self-care, set by the patient)", case)

    # 5. referrals through their life cycle (follow-ups of stays come with the transitions).
    services = [r for r in final.referrals if r.for_stay is None]
    for what, referrals in _referral_rounds(services) if services else ():
        case = _build(case, referrals=_in_order(final.referrals, referrals))
        yield WalkStep("referred", what, case)

    # 6. care-team changes: members join, some leave, the case may be handed over.
    left_early = {
        m.id: m.end for m in final.team if m.end is not None and (final.period.end is None or m.end < final.period.end)
    }
    joined = [m.model_copy(update={"end": None}) for m in final.team]
    case = _build(case, team=_in_order(final.team, joined))
    yield WalkStep("team", f"{len(final.team) - len(first_team)} joined ({len(final.team)} on the team)", case)
    if left_early or final.case_manager != case.case_manager:
        team = [m.model_copy(update={"end": left_early[m.id]}) if m.id in left_early else m for m in case.team]
        case = _build(case, team=team, case_manager=final.case_manager)
        handover = "; case handed over" if final.case_manager != manager else ""
        yield WalkStep("team", f"{len(left_early)} left{handover}", case)

    # 7. monitoring: contacts, and the case put on hold and resumed when that happened.
    case = _build(case, contacts=final.contacts)
    for change in middle:
        case = _change(case, change)
    in_person = sum(c.mode is ContactMode.FACE_TO_FACE for c in final.contacts)
    paused = f"; {' → '.join(h.status.value for h in middle)}" if middle else ""
    yield WalkStep("monitored", f"{_n(len(final.contacts), 'contact')} ({in_person} face-to-face){paused}", case)

    # 8. moves between care settings, with the follow-up booked for the discharges home.
    if case.stays != final.stays:
        case = _build(case, stays=final.stays)
        moves = _pathway(case) or "no moves since the referral"
        yield WalkStep("transitions", f"{moves}; {_n(len(case.transitions), 'transition')} in all", case)
    follow_ups = [r for r in final.referrals if r.for_stay is not None]
    for what, referrals in _referral_rounds(follow_ups) if follow_ups else ():
        services_now = [r for r in case.referrals if r.for_stay is None]
        case = _build(case, referrals=_in_order(final.referrals, [*services_now, *referrals]))
        yield WalkStep("transitions", f"follow-ups: {what}", case)

    # 9. evaluation: goal outcomes, needs resolved.
    case = _build(case, goals=final.goals, needs=final.needs)
    achieved = sum(g.achievement in (GoalAchievement.ACHIEVED, GoalAchievement.SUSTAINING) for g in final.goals)
    resolved = sum(n.resolved is not None for n in final.needs)
    yield WalkStep("evaluated", f"{achieved}/{len(final.goals)} goals attained, {resolved} needs resolved", case)

    # 10. closure: the last status, the team's memberships end with the case.
    if closing is not None:
        change = history[closing]
        case = _build(_change(case, change), team=final.team)
        yield WalkStep("closed", f"{change.status.value} on {change.start}: {change.reason or '-'}", case)


def _pathway(case: Case) -> str:
    """The care settings the person moved through since the referral (emergency visits left out)."""
    chain: list[str] = []
    for move in case.transitions:
        if move.date < case.period.start:
            continue
        for setting in (move.from_setting, move.to_setting):
            if setting is not CareSetting.EMERGENCY and (not chain or chain[-1] != setting.value):
                chain.append(setting.value)
    return " → ".join(chain)
