"""Synthetic journeys: deterministic, valid, and realistic in the ways the case-management cycle is lived."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict

import pytest

from fhir_cm.domain import (
    Acuity,
    AssessmentDomain,
    CareSetting,
    Case,
    CaseStatus,
    ContactMode,
    EligibilityReason,
    GoalAchievement,
    ProgrammeType,
    ReferralKind,
    ReferralStatus,
    StayStatus,
    TeamRole,
    derive_transitions,
)
from fhir_cm.synthetic import DEFAULT_TODAY, GenerationSummary, generate_cases

N = 200
HOSPITALS = (CareSetting.ACUTE_HOSPITAL, CareSetting.PSYCHIATRIC)
FINAL_REFERRAL = {ReferralStatus.COMPLETED, ReferralStatus.REJECTED, ReferralStatus.CANCELLED, ReferralStatus.FAILED}
NEEDS_REASON = {ReferralStatus.REJECTED, ReferralStatus.CANCELLED, ReferralStatus.FAILED, ReferralStatus.ON_HOLD}


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return list(generate_cases(N, seed=2024))


def lines(n: int, seed: int, **kw: object) -> list[str]:
    return [c.model_dump_json() for c in generate_cases(n, seed, **kw)]  # type: ignore[arg-type]


def happened(case: Case) -> list[dt.date]:
    """Every date on which something is recorded as having happened (not planned or due)."""
    days = [case.period.start, *([case.period.end] if case.period.end else [])]
    days += [h.start for h in case.status_history] + [h.end for h in case.status_history if h.end]
    days += [n.recorded for n in case.needs] + [n.resolved for n in case.needs if n.resolved]
    days += [r.authored for r in case.referrals] + [c.date for c in case.contacts]
    days += [m.start for m in case.team if m.start] + [m.end for m in case.team if m.end]
    days += [s.start for s in case.stays] + [s.end for s in case.stays if s.end]
    return days


# --- determinism -----------------------------------------------------------------------------------------


def test_same_seed_gives_identical_json() -> None:
    assert lines(25, 5) == lines(25, 5)


def test_different_seeds_give_different_cases() -> None:
    a, b = lines(10, 5), lines(10, 6)
    assert not set(a) & set(b)


def test_first_cases_of_a_run_do_not_depend_on_its_length() -> None:
    assert lines(30, 9)[:10] == lines(10, 9)


def test_today_anchors_the_journeys() -> None:
    today = dt.date(2021, 3, 1)
    moved = list(generate_cases(40, 3, today=today))
    assert all(d <= today for c in moved for d in happened(c))
    assert lines(5, 3) == lines(5, 3, today=DEFAULT_TODAY)
    assert lines(5, 3) != [c.model_dump_json() for c in moved[:5]]


def test_zero_cases_is_empty_and_negative_is_refused() -> None:
    assert list(generate_cases(0, 1)) == []
    with pytest.raises(ValueError, match="negative"):
        list(generate_cases(-1, 1))


# --- validity ---------------------------------------------------------------------------------------------


def test_every_case_round_trips_through_json(cases: list[Case]) -> None:
    for case in cases:
        assert Case.model_validate_json(case.model_dump_json()) == case


def test_nothing_happens_after_today_or_after_closure(cases: list[Case]) -> None:
    for case in cases:
        last = case.period.end or DEFAULT_TODAY
        assert max(happened(case)) <= last, case.id
        assert min(happened(case), default=case.period.start) >= case.period.start - dt.timedelta(days=220)


# --- identification and assessment --------------------------------------------------------------------------


def test_all_programmes_appear(cases: list[Case]) -> None:
    assert {c.programme for c in cases} == set(ProgrammeType)


def test_eligibility_matches_hospital_use_before_enrolment(cases: list[Case]) -> None:
    for case in cases:
        seen = [s for s in case.stays if s.start <= case.period.start]
        reasons = set(case.eligibility)
        assert reasons, case.id
        frequent_admissions = sum(s.setting in HOSPITALS for s in seen) >= 2
        frequent_ed = sum(s.setting is CareSetting.EMERGENCY for s in seen) >= 2
        readmitted = any(t.readmission for t in derive_transitions(seen))
        assert (EligibilityReason.FREQUENT_ADMISSIONS in reasons) == frequent_admissions, case.id
        assert (EligibilityReason.FREQUENT_ED_VISITS in reasons) == frequent_ed, case.id
        assert (EligibilityReason.READMISSION in reasons) == readmitted, case.id
    counts = Counter(r for c in cases for r in c.eligibility)
    for reason in (
        EligibilityReason.FREQUENT_ADMISSIONS,
        EligibilityReason.FREQUENT_ED_VISITS,
        EligibilityReason.READMISSION,
    ):
        assert counts[reason] > 0, reason


def test_child_protection_cases_are_children_at_risk(cases: list[Case]) -> None:
    children = [c for c in cases if c.programme is ProgrammeType.CHILD_PROTECTION]
    assert children and all(EligibilityReason.CHILD_AT_RISK in c.eligibility for c in children)


def test_needs_span_domains_and_record_strengths(cases: list[Case]) -> None:
    assert all(len({n.domain for n in c.needs}) >= 2 for c in cases)
    assert {n.domain for c in cases for n in c.needs} == set(AssessmentDomain)
    assert sum(any(n.strengths for n in c.needs) for c in cases) > N // 2


# --- planning ---------------------------------------------------------------------------------------------


def test_two_to_six_goals_with_self_care_goals_in_most_cases(cases: list[Case]) -> None:
    assert all(2 <= len(c.goals) <= 6 for c in cases)
    assert {len(c.goals) for c in cases} == {2, 3, 4, 5, 6}
    with_self_care = sum(any(g.self_care for g in c.goals) for c in cases)
    assert with_self_care >= 0.8 * N
    assert sum(g.achievement is not None and g.achievement.value == "achieved" for c in cases for g in c.goals) > 0


def test_goals_start_no_earlier_than_the_case(cases: list[Case]) -> None:
    for case in cases:
        for goal in case.goals:
            assert (goal.start or goal.due) >= case.period.start  # type: ignore[operator]


# --- referrals --------------------------------------------------------------------------------------------


def test_every_referral_status_appears_and_the_unhappy_ones_say_why(cases: list[Case]) -> None:
    referrals = [r for c in cases for r in c.referrals]
    assert {r.status for r in referrals} == set(ReferralStatus)
    for r in referrals:
        if r.status in NEEDS_REASON:
            assert r.status_reason, r.id
        assert r.authored <= (r.due or r.authored)


def test_closed_cases_leave_no_referral_open(cases: list[Case]) -> None:
    closed = [c for c in cases if c.status is CaseStatus.CLOSED]
    assert closed
    assert all(r.status in FINAL_REFERRAL for c in closed for r in c.referrals)


def test_follow_ups_are_due_within_a_week_of_discharge(cases: list[Case]) -> None:
    follow_ups = 0
    after_hospital = 0
    for case in cases:
        stays = {s.id: s for s in case.stays}
        for r in case.referrals:
            if r.kind is not ReferralKind.FOLLOW_UP:
                continue
            follow_ups += 1
            stay = stays[r.for_stay]  # type: ignore[index]
            assert stay.end is not None and r.due is not None
            assert 0 <= (r.due - stay.end).days <= 7, r.id
            after_hospital += stay.setting in HOSPITALS
    assert follow_ups > 0 and after_hospital > 0


# --- stays and transitions ------------------------------------------------------------------------------------


def test_some_journeys_go_hospital_to_skilled_nursing_to_home_health_to_home(cases: list[Case]) -> None:
    path = [
        (CareSetting.ACUTE_HOSPITAL, CareSetting.SKILLED_NURSING),
        (CareSetting.SKILLED_NURSING, CareSetting.HOME_HEALTH),
        (CareSetting.HOME_HEALTH, CareSetting.HOME),
    ]

    def walks(case: Case) -> bool:
        moves = [(t.from_setting, t.to_setting) for t in case.transitions]
        return any(moves[i : i + 3] == path for i in range(len(moves)))

    assert any(walks(c) for c in cases)
    assert sum(bool(c.transitions) for c in cases) >= N // 4
    assert any(t.from_setting is CareSetting.EMERGENCY for c in cases for t in c.transitions)


def test_some_cases_are_readmitted_within_thirty_days(cases: list[Case]) -> None:
    readmissions = [(c, t) for c in cases for t in c.transitions if t.readmission]
    assert readmissions
    for case, t in readmissions:
        stays = {s.id: s for s in case.stays}
        assert stays[t.to_stay].setting is CareSetting.ACUTE_HOSPITAL  # type: ignore[index]


def test_in_progress_stays_are_the_last_and_keep_the_case_open(cases: list[Case]) -> None:
    running = [c for c in cases if any(s.status is StayStatus.IN_PROGRESS for s in c.stays)]
    for case in running:
        assert case.is_open
        assert case.stays[-1].status is StayStatus.IN_PROGRESS


# --- team, caseloads and monitoring -------------------------------------------------------------------------


def test_case_managers_come_from_a_small_pool_and_carry_caseloads(cases: list[Case]) -> None:
    managers = Counter(c.case_manager.id for c in cases if c.case_manager is not None)
    assert 8 <= len(managers) <= 12
    assert max(managers.values()) >= 10
    for case in cases:
        current = [m for m in case.team if m.role is TeamRole.CASE_MANAGER and m.end in (None, case.period.end)]
        if case.case_manager is not None:
            assert case.case_manager in [m.party for m in current], case.id


def test_organisations_are_shared_between_cases(cases: list[Case]) -> None:
    providers = Counter(s.provider.id for c in cases for s in c.stays if s.provider is not None)
    assert providers and max(providers.values()) > 5


def test_the_team_changes_over_time(cases: list[Case]) -> None:
    roles = {m.role for c in cases for m in c.team}
    assert {TeamRole.CASE_MANAGER, TeamRole.PATIENT, TeamRole.PRIMARY_CARE, TeamRole.CAREGIVER,
            TeamRole.COMMUNITY_ORGANISATION, TeamRole.HOME_HEALTH_AGENCY} <= roles  # fmt: skip
    handovers = [c for c in cases if sum(m.role is TeamRole.CASE_MANAGER for m in c.team) > 1]
    assert handovers
    left_while_open = [c for c in cases if c.is_open and any(m.end is not None for m in c.team)]
    assert left_while_open


def test_contacts_grow_more_frequent_and_more_face_to_face_with_acuity(cases: list[Case]) -> None:
    rate: dict[Acuity, list[float]] = defaultdict(list)
    in_person: dict[Acuity, list[float]] = defaultdict(list)
    for case in cases:
        active = sum(
            ((h.end or case.period.end or DEFAULT_TODAY) - h.start).days + 1
            for h in case.status_history
            if h.status is CaseStatus.ACTIVE
        )
        if active >= 60 and case.contacts:
            rate[case.acuity].append(len(case.contacts) / active)
            in_person[case.acuity].append(
                sum(c.mode is ContactMode.FACE_TO_FACE for c in case.contacts) / len(case.contacts)
            )
    order = [Acuity.LOW, Acuity.MODERATE, Acuity.HIGH, Acuity.INTENSIVE]
    means = [statistics.mean(rate[a]) for a in order]
    assert means == sorted(means) and len(set(means)) == 4
    assert statistics.mean(in_person[Acuity.INTENSIVE]) > statistics.mean(in_person[Acuity.LOW])
    assert {c.mode for case in cases for c in case.contacts} == set(ContactMode)


# --- status history -----------------------------------------------------------------------------------------


def test_status_history_walks_referred_to_active_to_closed(cases: list[Case]) -> None:
    for case in cases:
        history = case.status_history
        assert history[0].status is CaseStatus.REFERRED and history[0].start == case.period.start
        if case.status is CaseStatus.CLOSED:
            assert history[-1].start == case.period.end
            assert CaseStatus.ACTIVE in [h.status for h in history]
    statuses = Counter(c.status for c in cases)
    assert statuses[CaseStatus.CLOSED] and statuses[CaseStatus.ACTIVE]
    assert any(h.status is CaseStatus.ON_HOLD for c in cases for h in c.status_history)


def test_a_closure_reason_matches_what_the_journey_did() -> None:
    closed = [c for c in generate_cases(600, seed=2024) if c.status is CaseStatus.CLOSED]
    reasons: Counter[str | None] = Counter()
    for case in closed:
        reason = case.status_history[-1].reason
        moves = case.transitions
        to_long_term_care = any(t.to_setting is CareSetting.LONG_TERM_CARE for t in moves)
        reasons[reason] += 1
        if reason == "Transferred to long-term care":
            assert to_long_term_care, case.id
        if moves and moves[-1].to_setting is CareSetting.LONG_TERM_CARE:
            assert reason == "Transferred to long-term care", case.id
        if reason == "Goals met; discharged from case management":
            assert any(g.achievement is GoalAchievement.ACHIEVED for g in case.goals), case.id
    assert reasons["Transferred to long-term care"] > 0 and len(reasons) >= 4


def test_journeys_are_the_same_shape_whatever_day_is_today() -> None:
    """Dates are relative to ``today``: moving it shifts every date and changes nothing else."""
    shift = dt.timedelta(days=523)
    for a, b in zip(generate_cases(30, 4), generate_cases(30, 4, today=DEFAULT_TODAY + shift), strict=True):
        assert a.id == b.id
        assert _shifted(a.model_dump(mode="json"), shift) == b.model_dump(mode="json"), a.id


def _shifted(node: object, by: dt.timedelta) -> object:
    if isinstance(node, dict):
        return {k: _shifted(v, by) for k, v in node.items()}
    if isinstance(node, list):
        return [_shifted(v, by) for v in node]
    if isinstance(node, str) and len(node) == 10 and node[4] == "-" and node[7] == "-":
        try:
            return (dt.date.fromisoformat(node) + by).isoformat()
        except ValueError:
            return node
    return node


def test_summary_counts_what_was_generated(cases: list[Case]) -> None:
    summary = GenerationSummary(seed=2024)
    for case in cases:
        summary.add(case)
    assert summary.cases == N == summary.open + summary.closed
    assert sum(summary.programmes.values()) == N
    assert summary.referrals == sum(len(c.referrals) for c in cases)
    assert summary.readmissions == sum(t.readmission for c in cases for t in c.transitions)
    assert f"{N} cases" in summary.line()
