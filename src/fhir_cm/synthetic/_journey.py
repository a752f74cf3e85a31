"""One synthetic case journey, built in the order a case manager lives it.

Hospital use comes first (it is what identification screens), then enrolment, assessment, the plan,
referrals, the team, monitoring contacts and — for cases that end — closure. Every later step reads
what the earlier ones produced, so the parts agree: eligibility matches the stays, contact frequency
matches acuity, follow-ups follow discharges, nothing happens after a case closed or after ``today``.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import TypeVar

from fhir_cm.domain import (
    Acuity,
    AssessmentDomain,
    CareSetting,
    Case,
    CaseStatus,
    Contact,
    ContactMode,
    EligibilityReason,
    Goal,
    GoalAchievement,
    GoalStatus,
    Need,
    Party,
    PartyKind,
    Period,
    ProgrammeType,
    Referral,
    ReferralKind,
    ReferralStatus,
    StatusChange,
    Stay,
    StayStatus,
    TeamMember,
    TeamRole,
    derive_transitions,
    move_referral,
)

from . import _catalogue as cat
from ._draw import Draw, days
from ._people import Pools, person
from ._odds import (
    ACTIVE_REFERRAL,
    AGE_RANGE,
    CAREGIVERS,
    CONTACT_INTERVAL,
    FACE_TO_FACE_SHARE,
    FOLLOW_UP_WITHIN_DAYS,
    FRAILTY_AGE,
    MEMBER_ROLE,
    OTHER_MODES,
    POST_ACUTE,
    PROGRAMME_WEIGHTS,
    REFERRAL_OUTCOMES,
    REFERRAL_PATHS,
)
from ._stays import HOSPITALS, HospitalUse

P = ProgrammeType
RS = ReferralStatus
T = TypeVar("T")


def _addressing(needs: list[Need], domain: AssessmentDomain) -> list[str]:
    """The first need of ``domain``, as what a goal or referral addresses (none if no such need was found)."""
    return [n.id for n in needs if n.domain is domain][:1]


class JourneyBuilder:
    """Builds one case from its own random generator, the region's pools and the day that counts as today."""

    def __init__(self, rng: random.Random, pools: Pools, today: dt.date) -> None:
        self.draw = Draw(rng)
        self.pools = pools
        self.today = today

    def org(self, category: str) -> Party:
        return self.draw.one(self.pools.organisations[category])

    # --- 1. hospital use and identification -------------------------------------------------------------

    def hospital_use(self, programme: ProgrammeType, start: dt.date) -> tuple[list[Stay], list[Stay]]:
        """The stays of the case, and those among them after which the person went home (follow-up due)."""
        return HospitalUse(self.draw, self.pools, self.today).plan(programme, start)

    # --- 2. assessment ---------------------------------------------------------------------------------

    def needs(self, programme: ProgrammeType, assessed: dt.date) -> tuple[list[Need], list[cat.NeedTemplate]]:
        d = self.draw
        catalogue = cat.NEEDS[programme]
        chosen = d.some(catalogue, d.randint(2, 5))
        if len({t.domain for t in chosen}) < 2:
            chosen[-1] = d.one([t for t in catalogue if t.domain is not chosen[0].domain])
        strengths = cat.STRENGTHS[programme]
        needs = [
            Need(
                id=d.id(),
                domain=t.domain,
                finding=t.finding,
                recorded=assessed,
                strengths=d.some(strengths, d.randint(0, 2)),
            )
            for t in chosen
        ]
        return needs, chosen

    @staticmethod
    def eligibility(
        programme: ProgrammeType, start: dt.date, stays: list[Stay], findings: list[cat.NeedTemplate], age: int
    ) -> list[EligibilityReason]:
        """Why the person qualified: what the stays up to enrolment show, plus what the assessment found."""
        seen = [s for s in stays if s.start <= start]
        reasons: set[EligibilityReason] = set()
        if sum(s.setting in HOSPITALS for s in seen) >= 2:
            reasons.add(EligibilityReason.FREQUENT_ADMISSIONS)
        if sum(s.setting is CareSetting.EMERGENCY for s in seen) >= 2:
            reasons.add(EligibilityReason.FREQUENT_ED_VISITS)
        if any(t.readmission for t in derive_transitions(seen)):
            reasons.add(EligibilityReason.READMISSION)
        if sum(t.domain is AssessmentDomain.PHYSICAL for t in findings) >= 2:
            reasons.add(EligibilityReason.MULTIPLE_COMORBIDITIES)
        for t in findings:
            if t.implies is not None and (t.implies is not EligibilityReason.FRAILTY or age >= FRAILTY_AGE):
                reasons.add(t.implies)
        if programme is P.CHILD_PROTECTION or not reasons:
            reasons.add(cat.DEFAULT_ELIGIBILITY[programme])
        return [r for r in EligibilityReason if r in reasons]  # declaration order, not set order: deterministic

    def acuity(self, programme: ProgrammeType, eligibility: list[EligibilityReason], stays: list[Stay]) -> Acuity:
        score = (
            len(eligibility)
            + (1 if stays else 0)
            + (1 if programme in (P.CHILD_PROTECTION, P.BEHAVIOURAL_HEALTH) else 0)
        )
        score += self.draw.one((-1, 0, 0, 1))
        return (
            Acuity.LOW
            if score <= 2
            else Acuity.MODERATE
            if score == 3
            else Acuity.HIGH
            if score == 4
            else Acuity.INTENSIVE
        )

    # --- 3. planning -------------------------------------------------------------------------------------

    def goals(
        self,
        programme: ProgrammeType,
        needs: list[Need],
        planned: dt.date,
        horizon: dt.date,
        status: CaseStatus,
        closed: bool,
    ) -> list[Goal]:
        d = self.draw
        catalogue = cat.GOALS[programme]
        chosen = d.some(catalogue, d.randint(2, 6))
        if not any(t.self_care for t in chosen) and d.chance(0.9):
            chosen[-1] = d.one([t for t in catalogue if t.self_care])
        goals = []
        for t in chosen:
            addresses = _addressing(needs, t.domain)
            if status in (CaseStatus.REFERRED, CaseStatus.WAITLIST):
                goal_status, achievement, start, due = GoalStatus.PROPOSED, None, None, planned + days(90)
            else:
                start = min(planned + days(d.randint(0, 14)), horizon)
                due = start + days(d.randint(30, 180))
                goal_status, achievement = self._goal_outcome(due, horizon, status, closed)
            goals.append(
                Goal(
                    id=d.id(), description=t.description, self_care=t.self_care, status=goal_status,
                    achievement=achievement, start=start, due=due, target=t.target, addresses=addresses,
                )
            )  # fmt: skip
        return goals

    def _goal_outcome(
        self, due: dt.date, horizon: dt.date, status: CaseStatus, closed: bool
    ) -> tuple[GoalStatus, GoalAchievement]:
        G, A = GoalStatus, GoalAchievement
        if closed:
            outcomes = {(G.COMPLETED, A.ACHIEVED): 55, (G.COMPLETED, A.NOT_ACHIEVED): 20,
                        (G.CANCELLED, A.NOT_ATTAINABLE): 10, (G.CANCELLED, A.NO_PROGRESS): 15}  # fmt: skip
        elif due <= horizon:
            outcomes = {(G.COMPLETED, A.ACHIEVED): 40, (G.ACTIVE, A.SUSTAINING): 25,
                        (G.ACTIVE, A.NOT_ACHIEVED): 20, (G.COMPLETED, A.NOT_ACHIEVED): 15}  # fmt: skip
        else:
            outcomes = {(G.ACTIVE, A.IN_PROGRESS): 35, (G.ACTIVE, A.IMPROVING): 30, (G.ACTIVE, A.NO_CHANGE): 15,
                        (G.ACTIVE, A.WORSENING): 10, (G.ACCEPTED, A.IN_PROGRESS): 10}  # fmt: skip
        goal_status, achievement = self.draw.weighted(outcomes)
        if status is CaseStatus.ON_HOLD and goal_status is G.ACTIVE and self.draw.chance(0.5):
            goal_status = G.ON_HOLD
        return goal_status, achievement

    # --- 4. implementation: referrals --------------------------------------------------------------------

    def walk(self, referral: Referral, to: RS) -> Referral:
        """Move a new referral through its life cycle to ``to``, one legal step at a time."""
        d = self.draw
        path = REFERRAL_PATHS[to]
        if to is RS.CANCELLED and d.chance(0.5):
            path = (RS.CANCELLED,)  # withdrawn before anyone accepted it
        elif to is RS.IN_PROGRESS and d.chance(0.15):
            path = (RS.ACCEPTED, RS.IN_PROGRESS, RS.ON_HOLD, RS.IN_PROGRESS)  # paused and resumed
        if referral.status is RS.DRAFT and to is not RS.DRAFT:
            path = (RS.REQUESTED, *path) if path != (RS.CANCELLED,) else path
        for step in path:
            reasons = cat.REFERRAL_REASONS.get(step.value)
            referral = move_referral(referral, step, d.one(reasons) if reasons else None)
        return referral

    def new_referral(self, kind: ReferralKind, service: str, authored: dt.date, due: dt.date, target: Party,
                     addresses: list[str], to: RS, *, for_stay: str | None = None,
                     reason: str | None = None) -> Referral:  # fmt: skip
        d = self.draw
        draft = to is RS.DRAFT or d.chance(0.1)
        referral = Referral(
            id=d.id(), kind=kind, service=service, status=RS.DRAFT if draft else RS.REQUESTED, authored=authored,
            due=due, target=target, addresses=addresses, for_stay=for_stay,
        )  # fmt: skip
        referral = self.walk(referral, to)
        if reason is not None:
            referral = referral.model_copy(update={"status_reason": reason})
        return referral

    def service_referrals(
        self, programme: ProgrammeType, needs: list[Need], planned: dt.date, horizon: dt.date, status: CaseStatus,
        closed: bool,
    ) -> list[tuple[Referral, str]]:  # fmt: skip
        """The programme's referrals, each with the category of who receives it."""
        d = self.draw
        out = []
        for t in d.some(cat.SERVICES[programme], d.randint(1, 4)):
            authored = planned + days(d.randint(0, min(90, (horizon - planned).days)))
            age = (horizon - authored).days
            if status in (CaseStatus.REFERRED, CaseStatus.WAITLIST):
                to = d.weighted({RS.DRAFT: 1, RS.REQUESTED: 2})
            else:
                stage = "closed" if closed else "new" if age < 7 else "recent" if age < 60 else "old"
                to = d.weighted(REFERRAL_OUTCOMES[stage])
            target = d.one(self.pools.specialists) if t.target == cat.SPECIALIST else self.org(t.target)
            addresses = _addressing(needs, t.domain)
            referral = self.new_referral(
                t.kind, t.service, authored, authored + days(d.randint(7, 45)), target, addresses, to
            )
            out.append((referral, t.target))
        return out

    def stay_referrals(
        self, programme: ProgrammeType, stays: list[Stay], home_after: list[Stay], needs: list[Need], pcp: Party,
        start: dt.date, horizon: dt.date,
    ) -> list[Referral]:  # fmt: skip
        """Placements for post-acute stays, and a follow-up due within a week of every discharge home."""
        d = self.draw
        out = []
        for stay in stays:
            if stay.setting in POST_ACUTE and stay.start >= start and stay.provider is not None:
                kind, service = POST_ACUTE[stay.setting]
                authored = max(start, stay.start - days(d.randint(1, 3)))
                to = RS.COMPLETED if stay.status is StayStatus.FINISHED else RS.IN_PROGRESS
                out.append(self.new_referral(kind, service, authored, stay.start, stay.provider, [], to))
        mental = programme is P.BEHAVIOURAL_HEALTH
        addresses = _addressing(needs, AssessmentDomain.PSYCHOLOGICAL if mental else AssessmentDomain.PHYSICAL)
        for stay in home_after:
            if stay.end is None or stay.end < start:
                continue
            due = stay.end + days(d.randint(2, FOLLOW_UP_WITHIN_DAYS))
            back = any(s.setting in (*HOSPITALS, CareSetting.EMERGENCY) and stay.end < s.start <= due for s in stays)
            reason = None
            if back:
                to, reason = RS.CANCELLED, "Patient readmitted before the appointment"
            elif due <= horizon:
                to = d.weighted({RS.COMPLETED: 85, RS.FAILED: 15})
            else:
                to = d.weighted({RS.REQUESTED: 1, RS.ACCEPTED: 1})
            target = self.org(cat.BEHAVIOURAL_CLINIC) if mental else pcp
            service = (
                "Follow-up with the community mental health team within 7 days of discharge"
                if mental
                else "Follow-up with primary care within 7 days of discharge"
            )
            authored = max(stay.start, start, stay.end - days(1))
            out.append(
                self.new_referral(ReferralKind.FOLLOW_UP, service, authored, due, target, addresses, to,
                                  for_stay=stay.id, reason=reason)
            )  # fmt: skip
        return out

    # --- team ----------------------------------------------------------------------------------------------

    def team(
        self, programme: ProgrammeType, patient: Party, age: int, start: dt.date, planned: dt.date, horizon: dt.date,
        stays: list[Stay], referrals: list[tuple[Referral, str]], assigned: bool,
    ) -> tuple[list[TeamMember], Party | None]:  # fmt: skip
        """The care team over time, and the case manager in charge now (none while on the waiting list)."""
        d = self.draw
        team: list[TeamMember] = []

        def join(role: TeamRole, party: Party, on: dt.date, until: dt.date | None = None) -> None:
            team.append(TeamMember(id=d.id(), role=role, party=party, start=min(on, horizon), end=until))

        join(TeamRole.PATIENT, patient, start)
        manager = None
        if assigned:
            manager = d.one(self.pools.case_managers)
            span = (horizon - start).days
            if span >= 90 and d.chance(0.15):  # handover to a colleague part-way through
                handover = start + days(d.randint(30, span - 30))
                join(TeamRole.CASE_MANAGER, manager, start, handover)
                manager = d.one([m for m in self.pools.case_managers if m.id != manager.id])
                join(TeamRole.CASE_MANAGER, manager, handover)
            else:
                join(TeamRole.CASE_MANAGER, manager, start)
        pcp = d.one(self.pools.primary_care)
        join(TeamRole.PRIMARY_CARE, pcp, start)
        if d.chance(CAREGIVERS.get(programme, 0.0)) or (age >= 80 and programme is not P.SOCIAL_WORK):
            join(TeamRole.CAREGIVER, person(d.rng, PartyKind.RELATED_PERSON), start)
        if programme in (P.HEALTH_CARE, P.REHABILITATION) and d.chance(0.25):
            join(TeamRole.SOCIAL_WORKER, d.one(self.pools.social_workers), planned + days(d.randint(0, 30)))
        if programme is P.REHABILITATION:
            join(TeamRole.THERAPIST, d.one(self.pools.therapists), planned)
        for stay in stays:
            if stay.setting is CareSetting.HOME_HEALTH and stay.provider is not None:
                join(TeamRole.HOME_HEALTH_AGENCY, stay.provider, stay.start, stay.end)
        on_team = {m.party.id for m in team}
        for referral, category in referrals:
            if referral.target is None or referral.target.id in on_team or category == cat.PRIMARY_CARE:
                continue
            if referral.status in ACTIVE_REFERRAL or (referral.status is RS.CANCELLED and d.chance(0.3)):
                joined = min(referral.authored + days(d.randint(1, 10)), horizon)
                left = None
                if referral.status in (RS.COMPLETED, RS.FAILED, RS.CANCELLED):
                    left = min(joined + days(d.randint(14, 90)), horizon)
                join(MEMBER_ROLE.get(category, TeamRole.COMMUNITY_ORGANISATION), referral.target, joined, left)
                on_team.add(referral.target.id)
        return team, manager

    # --- 5. monitoring ------------------------------------------------------------------------------------

    def contacts(self, acuity: Acuity, active: list[tuple[dt.date, dt.date]]) -> list[Contact]:
        """Contacts through every active stretch of the case, as often and as face-to-face as acuity asks."""
        d = self.draw
        lo, hi = CONTACT_INTERVAL[acuity]
        out = []
        for begin, end in active:
            on, first = begin, True
            while on <= end:
                if first or d.chance(FACE_TO_FACE_SHARE[acuity]):
                    mode = ContactMode.FACE_TO_FACE
                else:
                    mode = d.weighted(OTHER_MODES)
                note = (
                    "Initial assessment visit" if first and on == active[0][0] else d.one(cat.CONTACT_NOTES[mode.value])
                )
                out.append(Contact(id=d.id(), date=on, mode=mode, note=note))
                on, first = on + days(d.randint(lo, hi)), False
        return out

    # --- the whole case ------------------------------------------------------------------------------------

    def build(self) -> Case:
        d, today = self.draw, self.today
        case_id = d.id()
        programme = d.weighted(PROGRAMME_WEIGHTS)
        age = d.randint(*AGE_RANGE[programme])
        start = today - days(d.randint(10, 540))
        patient = person(d.rng, PartyKind.PATIENT)
        stays, home_after = self.hospital_use(programme, start)

        # Timeline: a case closes some time after its last stay ended, unless it is still running.
        in_stay = any(s.status is StayStatus.IN_PROGRESS for s in stays)
        end = start + days(d.randint(45, 330))
        finished = [s.end for s in stays if s.end is not None]
        if finished and max(finished) >= start:
            end = max(end, max(finished) + days(d.randint(FOLLOW_UP_WITHIN_DAYS, 30)))
        closed = not in_stay and end <= today and d.chance(0.85)
        horizon = end if closed else today
        history, active = self.status_history(programme, start, end if closed else None)
        status = history[-1].status
        planned = active[0][0] if active else start

        needs, findings = self.needs(programme, planned)
        eligibility = self.eligibility(programme, start, stays, findings, age)
        acuity = self.acuity(programme, eligibility, stays)
        goals = self.goals(programme, needs, planned, horizon, status, closed)
        if closed or status is CaseStatus.ON_HOLD:
            needs = self._resolve(needs, goals, horizon)
        services = self.service_referrals(programme, needs, planned, horizon, status, closed)
        team, manager = self.team(
            programme, patient, age, start, planned, horizon, stays, services, status is not CaseStatus.WAITLIST
        )
        pcp = next(m.party for m in team if m.role is TeamRole.PRIMARY_CARE)
        referrals = [r for r, _ in services] + self.stay_referrals(
            programme, stays, home_after, needs, pcp, start, horizon
        )
        contacts = self.contacts(acuity, active)
        if closed:
            team = [m if m.end is not None and m.end <= end else m.model_copy(update={"end": end}) for m in team]
            history[-1] = history[-1].model_copy(update={"reason": self._closure(stays, goals)})
        return Case(
            id=case_id,
            programme=programme,
            status=status,
            status_history=history,
            period=Period(start=start, end=end if closed else None),
            patient=patient,
            case_manager=manager,
            referral_source=self._source(programme, stays, start, pcp),
            eligibility=eligibility,
            acuity=acuity,
            plan_summary=self._summary(programme, needs, goals, status),
            needs=needs,
            goals=goals,
            referrals=referrals,
            team=team,
            contacts=contacts,
            stays=stays,
        )

    def status_history(
        self, programme: ProgrammeType, start: dt.date, closed_on: dt.date | None
    ) -> tuple[list[StatusChange], list[tuple[dt.date, dt.date]]]:
        """Referred → (waitlist) → active → (on hold → active) → (closed); and the active stretches."""
        d, today = self.draw, self.today
        horizon = closed_on or today
        steps: list[tuple[CaseStatus, dt.date, str | None]] = [(CaseStatus.REFERRED, start, "Referral received")]
        on = start
        if programme in (P.SOCIAL_WORK, P.BEHAVIOURAL_HEALTH) and d.chance(0.2):
            on += days(d.randint(1, 3))
            steps.append((CaseStatus.WAITLIST, on, "Waiting for a case manager"))
        if closed_on is None and (today - start).days <= 21 and d.chance(0.4):
            pass  # still being taken on: referred or on the waiting list
        else:
            on += days(d.randint(1, 7))
            steps.append((CaseStatus.ACTIVE, on, "Assessment done, plan agreed"))
            span = (horizon - on).days
            if span >= 90 and d.chance(0.2):
                held = on + days(d.randint(21, span - 45))
                resumed = held + days(d.randint(14, 45))
                if closed_on is None or resumed <= closed_on - days(14):
                    steps.append((CaseStatus.ON_HOLD, held, d.one(cat.CASE_ON_HOLD_REASONS)))
                    if resumed <= today - days(1):
                        steps.append((CaseStatus.ACTIVE, resumed, "Contact resumed"))
        if closed_on is not None:
            steps.append((CaseStatus.CLOSED, closed_on, None))  # why: once the journey is known (_closure)
        history = [
            StatusChange(status=s, start=begin, end=steps[i + 1][1] if i + 1 < len(steps) else None, reason=why)
            for i, (s, begin, why) in enumerate(steps)
        ]
        active = [(h.start, h.end or horizon) for h in history if h.status is CaseStatus.ACTIVE]
        return history, active

    def _closure(self, stays: list[Stay], goals: list[Goal]) -> str:
        """Why the case closed, drawn from the reasons that fit what the journey did."""
        moves = derive_transitions(stays)
        if moves and moves[-1].to_setting is CareSetting.LONG_TERM_CARE:
            return cat.CLOSED_TO_LONG_TERM_CARE
        if any(g.achievement is GoalAchievement.ACHIEVED for g in goals) and self.draw.chance(0.6):
            return cat.CLOSED_GOALS_MET
        return self.draw.one(cat.CASE_CLOSED_REASONS)

    @staticmethod
    def _resolve(needs: list[Need], goals: list[Goal], horizon: dt.date) -> list[Need]:
        """Needs whose goal was achieved are resolved (by the due date, or when the case stopped)."""
        done: dict[str, dt.date] = {}
        for g in goals:
            if g.achievement is GoalAchievement.ACHIEVED and g.due is not None:
                for need_id in g.addresses:
                    done[need_id] = min(done.get(need_id, g.due), g.due, horizon)
        return [n.model_copy(update={"resolved": max(done[n.id], n.recorded)}) if n.id in done else n for n in needs]

    def _source(self, programme: ProgrammeType, stays: list[Stay], start: dt.date, pcp: Party) -> Party:
        """Who referred: the hospital of the admission at enrolment, else the usual gateway of the programme."""
        admitted = [s.provider for s in stays if s.setting in HOSPITALS and s.start <= start and s.provider is not None]
        if admitted:
            return admitted[-1]
        if programme is P.CHILD_PROTECTION:
            return self.org(cat.FAMILY_SERVICES)
        if programme is P.SOCIAL_WORK:
            return self.org(self.draw.one((cat.HOUSING, cat.BENEFITS)))
        return pcp

    @staticmethod
    def _summary(programme: ProgrammeType, needs: list[Need], goals: list[Goal], status: CaseStatus) -> str:
        label = programme.value.replace("-", " ").capitalize()
        focus = "; ".join(n.finding[0].lower() + n.finding[1:] for n in needs[:2])
        if status in (CaseStatus.REFERRED, CaseStatus.WAITLIST):
            return f"{label} case management, assessment pending. Presenting concerns: {focus}."
        own = sum(g.self_care for g in goals)
        return f"{label} case management. Priorities: {focus}. {len(goals)} goals agreed, {own} set by the patient."
