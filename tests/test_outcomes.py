"""Outcome figures on hand-built cases; every expected number is worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from fhir_cm.domain import Case, CaseStatus, ProgrammeType
from fhir_cm.outcomes import SettingStays, compute_outcomes, load_outcome_rules, programme_outcomes

D = dt.date.fromisoformat
TODAY = D("2025-06-30")
HC = ProgrammeType.HEALTH_CARE


def stay(
    i: str, setting: str, start: str, end: str | None, disposition: str | None = None, status: str = "finished"
) -> dict[str, Any]:
    return {
        "id": i,
        "setting": setting,
        "start": start,
        "end": end,
        "discharge_disposition": disposition,
        "status": status,
    }


def case(case_id: str, programme: str = "health-care", **fields: Any) -> Case:
    base: dict[str, Any] = {
        "id": case_id,
        "programme": programme,
        "period": {"start": "2024-12-01"},
        "patient": {"kind": "patient", "id": f"p-{case_id}"},
    }
    return Case.model_validate(base | fields)


def goal(
    i: str, due: str | None, achievement: str | None = None, status: str = "active", start: str | None = None
) -> dict[str, Any]:
    return {"id": i, "description": i, "due": due, "achievement": achievement, "status": status, "start": start}


def referral(i: str, authored: str, status: str) -> dict[str, Any]:
    reason = "why" if status in ("rejected", "cancelled", "failed", "on-hold") else None
    return {
        "id": i,
        "kind": "home-health",
        "service": "s",
        "authored": authored,
        "status": status,
        "status_reason": reason,
    }


CASE_A = case(
    "a",
    stays=[
        stay("h1", "acute-hospital", "2025-01-05", "2025-01-10", "snf"),  # 5 days; H2 starts 26 days later
        stay("s1", "skilled-nursing", "2025-01-10", "2025-01-24", "home"),  # 14 days
        stay("h2", "acute-hospital", "2025-02-05", "2025-02-08", "home"),  # 3 days; next hospital 50 days on
        stay("x", "acute-hospital", "2025-02-10", None, status="cancelled"),  # not a stay: no readmission of h2
        stay("h3", "acute-hospital", "2025-03-30", "2025-04-02", "home"),  # ends after the period
    ],
    contacts=[
        {"id": "c0", "date": "2025-01-09", "mode": "face-to-face"},  # before h1's discharge: not a follow-up
        {"id": "c1", "date": "2025-01-13", "mode": "phone"},  # h1 + 3 days
        {"id": "c2", "date": "2025-02-15", "mode": "video"},  # h2 + 7 days
    ],
    goals=[
        goal("g1", "2025-02-01", "achieved"),
        goal("g2", "2025-03-15", "in-progress"),
        goal("g3", "2025-03-20", status="cancelled"),
        goal("g4", "2025-05-01", "achieved"),  # due after the period
        goal("g5", None, "achieved", start="2025-01-01"),  # no due date: not judged
        goal("g6", "2025-03-31", "sustaining"),
        goal("g7", "2025-07-15", "achieved"),  # due after today
    ],
    referrals=[
        referral("r1", "2025-01-15", "completed"),
        referral("r2", "2025-02-01", "rejected"),
        referral("r3", "2025-02-10", "in-progress"),
        referral("r4", "2025-03-01", "draft"),
        referral("r5", "2024-12-20", "completed"),  # authored before the period
    ],
)
CASE_B = case(
    "b",
    status="closed",
    period={"start": "2025-02-01", "end": "2025-03-20"},
    stays=[
        stay("h4", "acute-hospital", "2025-03-01", "2025-03-04", "exp"),  # died: no index discharge; 3 days
        stay("h5", "acute-hospital", "2025-03-10", "2025-03-12", "home"),  # 2 days; no contact after it
    ],
)
CASE_C = case("c", programme="social-work", stays=[stay("h6", "acute-hospital", "2025-01-01", "2025-01-03", "home")])
CASE_D = case(
    "d",
    status="entered-in-error",
    period={"start": "2025-01-01", "end": "2025-01-02"},
    stays=[stay("h7", "acute-hospital", "2025-01-01", "2025-01-09", "home")],
)
CASES = [CASE_A, CASE_B, CASE_C, CASE_D]


def test_first_quarter_figures() -> None:
    got = programme_outcomes(HC, CASES, start=D("2025-01-01"), end=D("2025-03-31"), today=TODAY)
    # Cases a and b; d was entered in error, c is another programme.
    assert got.cases == 2
    # Index discharges h1, h2, h5 (h4 ended in death, h3 after the period); only h1 was readmitted (h2, 26 days).
    assert (got.hospital_discharges, got.readmissions_30d, got.readmission_rate) == (3, 1, 0.3333)
    # Acute stays ending in the period: h1 5, h2 3, h4 3, h5 2 -> mean 3.25, median 3; SNF s1 14.
    assert got.length_of_stay == [
        SettingStays(setting="acute-hospital", stays=4, mean_days=3.25, median_days=3.0),
        SettingStays(setting="skilled-nursing", stays=1, mean_days=14.0, median_days=14.0),
    ]
    # Goals due in the period: g1 (achieved), g2 (in progress), g6 (sustaining) -> 2 of 3.
    assert (got.goals_due, got.goals_attained, got.goal_attainment_rate) == (3, 2, 0.6667)
    # Follow-up: h1 +3 days, h2 +7 days, h5 none -> median 5.
    assert (got.follow_ups, got.discharges_without_follow_up, got.median_days_to_follow_up) == (2, 1, 5.0)
    # Referrals authored in the period: r1 completed, r2 rejected, r3 in progress (r4 draft) -> 1 of 2 ended.
    assert (got.referrals, got.referrals_ended, got.referrals_completed, got.referral_completion_rate) == (3, 2, 1, 0.5)


def test_all_time_figures() -> None:
    got = programme_outcomes(HC, CASES, start=None, end=None, today=TODAY)
    # h3 joins the index discharges (not readmitted, no follow-up): 1 of 4.
    assert (got.hospital_discharges, got.readmissions_30d, got.readmission_rate) == (4, 1, 0.25)
    # Acute stays 5, 3, 3 (h3), 3, 2 -> mean 3.2, median 3.
    assert got.length_of_stay[0] == SettingStays(setting="acute-hospital", stays=5, mean_days=3.2, median_days=3.0)
    # g4 (due 1 May, achieved) joins; g7 is due after today: 3 of 4.
    assert (got.goals_due, got.goals_attained, got.goal_attainment_rate) == (4, 3, 0.75)
    assert (got.follow_ups, got.discharges_without_follow_up, got.median_days_to_follow_up) == (2, 2, 5.0)
    # r5 joins: 4 referrals, 3 ended, 2 completed.
    assert (got.referrals, got.referrals_ended, got.referrals_completed, got.referral_completion_rate) == (
        4,
        3,
        2,
        0.6667,
    )


def test_a_programme_with_nothing_to_measure_has_no_rates() -> None:
    got = programme_outcomes(ProgrammeType.CHILD_PROTECTION, CASES, start=None, end=None, today=TODAY)
    assert got.cases == 0
    assert (
        got.readmission_rate,
        got.goal_attainment_rate,
        got.median_days_to_follow_up,
        got.referral_completion_rate,
    ) == (None, None, None, None)
    assert got.length_of_stay == []


def test_a_readmission_the_same_day_counts_and_one_after_31_days_does_not() -> None:
    same_day = case(
        "e",
        stays=[
            stay("a", "acute-hospital", "2025-01-01", "2025-01-05", "home"),
            stay("b", "acute-hospital", "2025-01-05", "2025-01-06", "home"),
        ],
    )
    day_31 = case(
        "f",
        stays=[
            stay("a", "acute-hospital", "2025-01-01", "2025-01-05", "home"),
            stay("b", "acute-hospital", "2025-02-05", "2025-02-06", "home"),
        ],
    )
    day_30 = case(
        "g",
        stays=[
            stay("a", "acute-hospital", "2025-01-01", "2025-01-05", "home"),
            stay("b", "acute-hospital", "2025-02-04", "2025-02-06", "home"),
        ],
    )
    window = {"start": D("2025-01-01"), "end": D("2025-01-31"), "today": TODAY}
    assert programme_outcomes(HC, [same_day], **window).readmissions_30d == 1
    assert programme_outcomes(HC, [day_31], **window).readmissions_30d == 0
    assert programme_outcomes(HC, [day_30], **window).readmissions_30d == 1


def test_dates_at_the_end_of_the_calendar_do_not_overflow() -> None:
    far = case("z", stays=[stay("a", "acute-hospital", "9999-12-20", "9999-12-31", "home")])
    got = programme_outcomes(HC, [far], start=None, end=None, today=dt.date.max)
    assert (got.hospital_discharges, got.readmissions_30d) == (1, 0)


def test_compute_outcomes_lists_the_programmes_present_or_asked_for() -> None:
    assert [o.programme for o in compute_outcomes(CASES, start=None, end=None, today=TODAY)] == [
        HC,
        ProgrammeType.SOCIAL_WORK,
    ]
    asked = compute_outcomes(CASES, start=None, end=None, today=TODAY, programmes=[ProgrammeType.REHABILITATION])
    assert [(o.programme, o.cases) for o in asked] == [(ProgrammeType.REHABILITATION, 0)]


def test_a_period_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends"):
        programme_outcomes(HC, CASES, start=D("2025-02-01"), end=D("2025-01-01"), today=TODAY)


def test_entered_in_error_cases_count_nowhere() -> None:
    assert CASE_D.status is CaseStatus.ENTERED_IN_ERROR
    got = programme_outcomes(HC, [CASE_D], start=None, end=None, today=TODAY)
    assert (got.cases, got.hospital_discharges, got.length_of_stay) == (0, 0, [])


def test_figures_as_of_a_past_day_count_only_what_had_happened_by_then() -> None:
    c = case(
        "asof",
        stays=[
            stay("h1", "acute-hospital", "2025-01-05", "2025-01-10", "home"),
            stay("h2", "acute-hospital", "2025-01-20", "2025-01-25", "home"),
        ],
        contacts=[{"id": "k1", "date": "2025-01-22", "mode": "phone"}],
    )
    (early,) = compute_outcomes([c], start=None, end=None, today=D("2025-01-15"))
    # On 01-15: one discharge, no readmission yet, no follow-up contact yet; h2 had not begun.
    assert (early.hospital_discharges, early.readmissions_30d, early.follow_ups) == (1, 0, 0)
    (late,) = compute_outcomes([c], start=None, end=None, today=TODAY)
    assert (late.hospital_discharges, late.readmissions_30d, late.follow_ups) == (2, 1, 1)
    assert compute_outcomes([c], start=None, end=None, today=D("2024-11-01"))[0].cases == 0


def test_a_transfer_and_a_wards_own_record_are_not_discharges_nor_readmissions() -> None:
    """As the transitions tracker reads them (domain.transferred): one episode of care each."""
    transfer = case(
        "t",
        stays=[
            stay("a", "acute-hospital", "2025-01-01", "2025-01-05", "other-hcf"),  # to another acute hospital
            stay("b", "acute-hospital", "2025-01-05", "2025-01-10", "home"),
        ],
    )
    ward = case(
        "w",
        stays=[
            stay("a", "acute-hospital", "2025-01-01", "2025-01-10", "home"),
            stay("ward", "acute-hospital", "2025-01-03", "2025-01-05"),  # a ward's own Encounter, inside the stay
        ],
    )
    window = {"start": D("2025-01-01"), "end": D("2025-01-31"), "today": TODAY}
    for one in (transfer, ward):
        got = programme_outcomes(HC, [one], **window)
        assert (got.hospital_discharges, got.readmissions_30d) == (1, 0), one.id  # was (2, 1) and (2, 0)


def test_a_case_closed_then_reopened_counts_in_no_period_it_was_closed_throughout() -> None:
    """Reopening clears the case's end, so its period ran on through the months it was closed: a period
    within them counted it among the programme's cases, which it was not then."""
    history = [
        {"status": "active", "start": "2024-12-01", "end": "2025-01-15"},
        {"status": "closed", "start": "2025-01-15", "end": "2025-04-01", "reason": "goals met"},
        {"status": "active", "start": "2025-04-01"},
    ]
    reopened = case("r", status_history=history)

    def cases(start: str, end: str) -> int:
        return programme_outcomes(HC, [reopened], start=D(start), end=D(end), today=TODAY).cases

    assert cases("2025-02-01", "2025-03-31") == 0  # closed throughout
    assert cases("2025-01-15", "2025-01-31") == 1  # its last day open
    assert cases("2025-03-01", "2025-04-01") == 1  # reopened on the period's last day
    assert cases("2024-11-01", "2024-11-30") == 0  # before it began
    late = case("l", status_history=[{"status": "active", "start": "2025-03-01"}])  # a history begun later
    assert programme_outcomes(HC, [late], start=D("2025-01-01"), end=D("2025-01-31"), today=TODAY).cases == 1


def test_only_stays_around_the_enrolment_count_for_a_case() -> None:
    """A stay counts for the case when it ends within its period or at most ``look_back_days`` (30,
    mappings/outcome-rules.json) before it starts: the discharge a referral follows within days. Stays
    from months before the enrolment counted as the programme's discharges, so a period's figures came
    from patients not yet enrolled."""
    assert load_outcome_rules().look_back_days == 30
    enrolled = case(
        "e",
        period={"start": "2025-03-01"},
        stays=[
            stay("old", "acute-hospital", "2024-11-01", "2024-11-05", "home"),  # 116 days before: not the case's
            stay("snf", "skilled-nursing", "2025-01-20", "2025-01-29", "home"),  # 31 days before: not the case's
            stay("ref", "acute-hospital", "2025-01-25", "2025-01-30", "home"),  # 30 days before: the referral's
            stay("in", "acute-hospital", "2025-03-10", "2025-03-12", "home"),  # in the case: 39 days after "ref"
        ],
    )
    got = programme_outcomes(HC, [enrolled], start=None, end=None, today=TODAY)
    assert (got.cases, got.hospital_discharges, got.readmissions_30d) == (1, 2, 0)  # was 3 (with "old")
    assert got.length_of_stay == [SettingStays(setting="acute-hospital", stays=2, mean_days=3.5, median_days=3.5)]
    # A quarter before the enrolment (its cases: 0) shows no discharge of a patient not yet enrolled.
    q4 = programme_outcomes(HC, [enrolled], start=D("2024-10-01"), end=D("2024-12-31"), today=TODAY)
    assert (q4.cases, q4.hospital_discharges, q4.length_of_stay) == (0, 0, [])
    # Stays after the case closed are not its discharges either (a readmission of one of its own still counts).
    closed = case(
        "k",
        status="closed",
        period={"start": "2025-01-01", "end": "2025-02-01"},
        stays=[
            stay("a", "acute-hospital", "2025-01-20", "2025-01-25", "home"),
            stay("b", "acute-hospital", "2025-02-10", "2025-02-12", "home"),  # after the closure: readmits "a"
        ],
    )
    got = programme_outcomes(HC, [closed], start=None, end=None, today=TODAY)
    assert (got.hospital_discharges, got.readmissions_30d, got.length_of_stay[0].stays) == (1, 1, 1)


def test_a_discharge_before_the_enrolment_followed_by_another_admission_is_not_an_index_discharge() -> None:
    """Readmitted before enrolling (the admission the referral came from), the earlier discharge is no
    index discharge of the programme: its readmission came before the programme could act."""
    c = case(
        "r",
        period={"start": "2025-03-01"},
        stays=[
            stay("first", "acute-hospital", "2025-02-05", "2025-02-10", "home"),
            stay("index", "acute-hospital", "2025-02-27", "2025-03-04", "home"),  # referred during it
        ],
    )
    got = programme_outcomes(HC, [c], start=None, end=None, today=TODAY)
    assert (got.hospital_discharges, got.readmissions_30d) == (1, 0)
    assert got.length_of_stay[0].stays == 2  # both stays around the enrolment are the case's


def test_a_readmission_into_another_case_of_the_patient_counts_for_the_index_discharge() -> None:
    """The measure counts by patient: a's discharge of 2025-02-05 readmitted on 02-20 into b (another
    programme's case of the same patient) is a's readmission, once; b's copy of a's same-day stay, the
    hospital a transferred to and another patient's admission are not; b's case entered in error holds none."""
    one = {"kind": "patient", "id": "p-1"}
    a = case("a", patient=one, stays=[stay("h1", "acute-hospital", "2025-02-01", "2025-02-05", "home")])
    b = case(
        "b",
        "rehabilitation",
        patient=one,
        period={"start": "2025-02-25"},
        stays=[stay("h2", "acute-hospital", "2025-02-20", "2025-02-22", "home")],
    )
    assert programme_outcomes(HC, [a], start=None, end=None, today=TODAY).readmissions_30d == 0
    figures = programme_outcomes(HC, [a, b], start=D("2025-02-01"), end=D("2025-02-28"), today=TODAY)
    assert (figures.hospital_discharges, figures.readmissions_30d) == (1, 1)  # b counts nothing for HC itself
    rehab = programme_outcomes(ProgrammeType.REHABILITATION, [a, b], start=None, end=None, today=TODAY)
    assert (rehab.hospital_discharges, rehab.readmissions_30d) == (1, 0)  # a's stay is history before b's
    other = case("c", patient={"kind": "patient", "id": "p-2"}, stays=b.model_dump()["stays"])
    gone = b.model_copy(update={"status": CaseStatus.ENTERED_IN_ERROR})
    for elsewhere in (other, gone):
        assert programme_outcomes(HC, [a, elsewhere], start=None, end=None, today=TODAY).readmissions_30d == 0

    day = case("d", patient=one, stays=[stay("h3", "acute-hospital", "2025-03-03", "2025-03-03", "home")])
    copied = case("e", "rehabilitation", patient=one, period={"start": "2025-03-10"}, stays=day.model_dump()["stays"])
    assert programme_outcomes(HC, [day, copied], start=None, end=None, today=TODAY).readmissions_30d == 0
    moved = case("f", patient=one, stays=[stay("h4", "acute-hospital", "2025-04-01", "2025-04-05", "other-hcf")])
    there = case(
        "g", "rehabilitation", patient=one, period={"start": "2025-04-10"},
        stays=[stay("h5", "acute-hospital", "2025-04-06", "2025-04-09", "home")],
    )  # fmt: skip
    assert programme_outcomes(HC, [moved, there], start=None, end=None, today=TODAY).readmissions_30d == 0


def test_a_transfer_recorded_in_another_case_of_the_patient_is_no_discharge() -> None:
    """f's hospital sent the person on to another (``other-hcf``) on 2025-04-05, and the hospital that
    took them the next day is recorded in g, another case of the same patient: one episode of care, so
    f's stay ends in no discharge (none to follow up), as when both stays are f's. A discharge home
    readmitted into g within 30 days is still a readmission, and another patient's stay transfers no one."""
    one = {"kind": "patient", "id": "p-1"}
    moved = case("f", patient=one, stays=[stay("h4", "acute-hospital", "2025-04-01", "2025-04-05", "other-hcf")])
    there = case(
        "g", "rehabilitation", patient=one, period={"start": "2025-04-10"},
        stays=[stay("h5", "acute-hospital", "2025-04-06", "2025-04-09", "home")],
    )  # fmt: skip
    together = case("fg", patient=one, stays=[*moved.model_dump()["stays"], *there.model_dump()["stays"]])
    alone = programme_outcomes(HC, [together], start=None, end=None, today=TODAY)
    assert (alone.hospital_discharges, alone.discharges_without_follow_up) == (1, 1)  # h5's end only
    got = programme_outcomes(HC, [moved, there], start=None, end=None, today=TODAY)
    assert (got.hospital_discharges, got.readmissions_30d, got.discharges_without_follow_up) == (0, 0, 0)
    stranger = there.model_copy(update={"patient": moved.patient.model_copy(update={"id": "p-2"})})
    other = programme_outcomes(HC, [moved, stranger], start=None, end=None, today=TODAY)
    assert (other.hospital_discharges, other.discharges_without_follow_up) == (1, 1)

    home = case("h", patient=one, stays=[stay("h6", "acute-hospital", "2025-05-01", "2025-05-03", "home")])
    back = case(
        "i", "rehabilitation", patient=one, period={"start": "2025-05-04"},
        stays=[stay("h7", "acute-hospital", "2025-05-04", None, status="in-progress")],
    )  # fmt: skip
    readmitted = programme_outcomes(HC, [home, back], start=None, end=None, today=TODAY)
    assert (readmitted.hospital_discharges, readmitted.readmissions_30d) == (1, 1)


def test_a_discharge_before_the_enrolment_readmitted_into_another_case_is_not_an_index_discharge() -> None:
    """As above, the admission that came between the earlier discharge and the enrolment recorded in
    another case of the patient (another programme's): the earlier discharge is still history before
    the programme, not a discharge the programme failed to keep out of hospital."""
    one = {"kind": "patient", "id": "p-1"}
    first = stay("first", "acute-hospital", "2025-02-05", "2025-02-10", "home")
    between = stay("index", "acute-hospital", "2025-02-27", "2025-02-28", "home")
    both = case("r", period={"start": "2025-03-01"}, patient=one, stays=[first, between])
    alone = programme_outcomes(HC, [both], start=None, end=None, today=TODAY)
    assert (alone.hospital_discharges, alone.readmissions_30d) == (1, 0)

    mine = case("r", period={"start": "2025-03-01"}, patient=one, stays=[first])
    theirs = case("s", "rehabilitation", period={"start": "2025-02-26"}, patient=one, stays=[between])
    got = programme_outcomes(HC, [mine, theirs], start=None, end=None, today=TODAY)
    assert (got.hospital_discharges, got.readmissions_30d, got.discharges_without_follow_up) == (0, 0, 0)
    back = stay("back", "acute-hospital", "2025-03-02", "2025-03-05", "home")
    later = case("s", "rehabilitation", period={"start": "2025-02-26"}, patient=one, stays=[back])
    after = programme_outcomes(HC, [mine, later], start=None, end=None, today=TODAY)
    assert (after.hospital_discharges, after.readmissions_30d) == (1, 1)  # readmitted once enrolled
