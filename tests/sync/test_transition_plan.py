"""The discharge rule shared by the pull round and the CDS Hooks services."""

from __future__ import annotations

import datetime as dt

from fhir_cm.domain import CareSetting, CaseStatus, DischargeDisposition, Party, PartyKind, Period, ProgrammeType, Stay
from fhir_cm.domain import Case
from fhir_cm.sync import RECENT_DISCHARGE_DAYS, transition_plan

TODAY = dt.date(2026, 6, 1)


def case(discharged_days_ago: int | None, status: CaseStatus = CaseStatus.ACTIVE) -> Case:
    stays = []
    if discharged_days_ago is not None:
        end = TODAY - dt.timedelta(days=discharged_days_ago)
        stays = [
            Stay(id="s1", setting=CareSetting.ACUTE_HOSPITAL, start=end - dt.timedelta(days=4), end=end,
                 discharge_disposition=DischargeDisposition.SKILLED_NURSING),
        ]  # fmt: skip
    closed = status is CaseStatus.CLOSED
    return Case(
        id="c1",
        programme=ProgrammeType.HEALTH_CARE,
        status=status,
        period=Period(start=TODAY - dt.timedelta(days=90), end=TODAY if closed else None),
        patient=Party(kind=PartyKind.PATIENT, id="p1"),
        stays=stays,
    )


def test_a_recent_discharge_of_an_open_case_needs_a_plan_an_old_one_does_not() -> None:
    plan = transition_plan(case(3), TODAY)
    assert plan is not None and plan.move == 1 and plan.to_setting is CareSetting.SKILLED_NURSING
    assert transition_plan(case(RECENT_DISCHARGE_DAYS + 1), TODAY) is None
    assert transition_plan(case(None), TODAY) is None


def test_a_discharge_the_ehr_reports_needs_a_plan_even_before_the_stays_show_it() -> None:
    plan = transition_plan(case(None), TODAY, discharged_on=TODAY)
    assert plan is not None and plan.discharged_on == TODAY and plan.move is None and plan.follow_up_due is None


def test_a_move_the_tracker_recorded_is_planned_for_whenever_it_happened() -> None:
    plan = transition_plan(case(400), TODAY, move=1)
    assert plan is not None and plan.move == 1 and plan.from_setting is CareSetting.ACUTE_HOSPITAL
    assert transition_plan(case(400), TODAY, move=2) is None


def test_a_closed_case_needs_no_plan() -> None:
    assert transition_plan(case(3, CaseStatus.CLOSED), TODAY, discharged_on=TODAY) is None
