"""Transitions between care settings are read off the stays; readmissions are flagged."""

from __future__ import annotations

import datetime as dt

from fhir_cm.domain import CareSetting as S
from fhir_cm.domain import Referral, Stay, current_setting, derive_transitions, hospital_discharges

D = dt.date


def stay(
    id: str, setting: str, start: D, end: D | None, disposition: str | None = None, status: str = "finished"
) -> Stay:
    return Stay(id=id, setting=setting, start=start, end=end, discharge_disposition=disposition, status=status)


def moves(stays: list[Stay], referrals: tuple[Referral, ...] = ()) -> list[tuple[S, S, D, bool]]:
    return [(t.from_setting, t.to_setting, t.date, t.readmission) for t in derive_transitions(stays, referrals)]


def test_hospital_snf_home_health_home() -> None:
    stays = [
        stay("h", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "snf"),
        stay("s", "skilled-nursing", D(2026, 1, 5), D(2026, 1, 20), "home"),
        stay("hh", "home-health", D(2026, 1, 20), D(2026, 2, 20), "home"),
    ]
    assert moves(stays) == [
        (S.ACUTE_HOSPITAL, S.SKILLED_NURSING, D(2026, 1, 5), False),
        (S.SKILLED_NURSING, S.HOME_HEALTH, D(2026, 1, 20), False),
        (S.HOME_HEALTH, S.HOME, D(2026, 2, 20), False),
    ]


def test_readmission_within_30_days_via_home() -> None:
    stays = [
        stay("h1", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "home"),
        stay("h2", "acute-hospital", D(2026, 1, 30), D(2026, 2, 2), "home"),
    ]
    assert moves(stays) == [
        (S.ACUTE_HOSPITAL, S.HOME, D(2026, 1, 5), False),
        (S.HOME, S.ACUTE_HOSPITAL, D(2026, 1, 30), True),
        (S.ACUTE_HOSPITAL, S.HOME, D(2026, 2, 2), False),
    ]


def test_return_after_31_days_is_not_a_readmission() -> None:
    stays = [
        stay("h1", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "home"),
        stay("h2", "acute-hospital", D(2026, 2, 5), D(2026, 2, 8), "home"),
    ]
    assert [m[3] for m in moves(stays)] == [False, False, False]


def test_a_transfer_to_another_acute_hospital_is_a_move_but_not_a_readmission() -> None:
    """Sent on to another hospital the day of discharge or the next (CMS: a transfer, one episode of
    care); the readmission clock runs from the discharge from the last hospital of the chain."""
    same_day = [
        stay("h1", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "other-hcf"),
        stay("h2", "acute-hospital", D(2026, 1, 5), D(2026, 1, 10), "home"),
        stay("h3", "acute-hospital", D(2026, 1, 25), D(2026, 1, 27), "home"),
    ]
    assert moves(same_day) == [
        (S.ACUTE_HOSPITAL, S.ACUTE_HOSPITAL, D(2026, 1, 5), False),
        (S.ACUTE_HOSPITAL, S.HOME, D(2026, 1, 10), False),
        (S.HOME, S.ACUTE_HOSPITAL, D(2026, 1, 25), True),
        (S.ACUTE_HOSPITAL, S.HOME, D(2026, 1, 27), False),
    ]
    next_day = [
        stay("h1", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "home"),
        stay("h2", "acute-hospital", D(2026, 1, 12), D(2026, 1, 14), "other-hcf"),
        stay("h3", "acute-hospital", D(2026, 1, 15), D(2026, 1, 20), "home"),
    ]
    assert [m[3] for m in moves(next_day)] == [False, True, False, False]  # h2 is the readmission, h3 a transfer
    # Two days later is a new admission, whatever the disposition said.
    later = [
        stay("h1", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "other-hcf"),
        stay("h2", "acute-hospital", D(2026, 1, 7), D(2026, 1, 10), "home"),
    ]
    assert moves(later)[0] == (S.ACUTE_HOSPITAL, S.ACUTE_HOSPITAL, D(2026, 1, 5), True)


def test_follow_up_due_comes_from_the_follow_up_referral() -> None:
    stays = [stay("h", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "home")]
    follow_up = Referral(
        kind="follow-up", service="PCP visit", authored=D(2026, 1, 5), due=D(2026, 1, 12), for_stay="h"
    )
    [t] = derive_transitions(stays, [follow_up])
    assert t.follow_up_due == D(2026, 1, 12)
    assert t.from_stay == "h" and t.to_stay is None


def test_ward_move_in_same_setting_is_not_a_transition() -> None:
    stays = [
        stay("a", "acute-hospital", D(2026, 1, 1), D(2026, 1, 3)),
        stay("b", "acute-hospital", D(2026, 1, 3), D(2026, 1, 6), "home"),
    ]
    assert moves(stays) == [(S.ACUTE_HOSPITAL, S.HOME, D(2026, 1, 6), False)]


def test_planned_and_cancelled_stays_are_ignored_and_open_stay_has_no_exit() -> None:
    stays = [
        stay("er", "emergency", D(2026, 1, 1), D(2026, 1, 1)),
        stay("h", "acute-hospital", D(2026, 1, 1), None, status="in-progress"),
        stay("p", "skilled-nursing", D(2026, 2, 1), None, status="planned"),
    ]
    assert moves(stays) == [(S.EMERGENCY, S.ACUTE_HOSPITAL, D(2026, 1, 1), False)]


def discharged(stays: list[Stay]) -> list[str]:
    return [s.id for s in hospital_discharges(stays)]


def test_a_hospitalisation_recorded_in_parts_has_one_discharge_its_last() -> None:
    ward_split = [
        stay("a", "acute-hospital", D(2026, 1, 1), D(2026, 1, 3)),
        stay("b", "acute-hospital", D(2026, 1, 3), D(2026, 1, 6), "home"),
    ]
    nested = [
        stay("parent", "acute-hospital", D(2026, 1, 1), D(2026, 1, 10), "snf"),
        stay("w1", "acute-hospital", D(2026, 1, 1), D(2026, 1, 3)),
        stay("w2", "acute-hospital", D(2026, 1, 3), D(2026, 1, 10)),
        stay("w3", "acute-hospital", D(2026, 1, 5), D(2026, 1, 7)),
    ]
    still_in = [
        stay("a", "acute-hospital", D(2026, 1, 1), D(2026, 1, 3)),
        stay("b", "acute-hospital", D(2026, 1, 3), None, status="in-progress"),
    ]
    transfer = [
        stay("a", "acute-hospital", D(2026, 1, 1), D(2026, 1, 3), "other-hcf"),
        stay("b", "acute-hospital", D(2026, 1, 4), D(2026, 1, 8), "home"),
    ]
    assert discharged(ward_split) == ["b"]
    assert discharged(nested) == ["w2"]
    assert discharged(still_in) == []
    assert discharged(transfer) == ["b"]


def test_an_encounter_left_open_long_ago_does_not_hide_later_discharges() -> None:
    stays = [
        stay("stale", "acute-hospital", D(2026, 1, 1), None, status="in-progress"),
        stay("h", "acute-hospital", D(2026, 3, 1), D(2026, 3, 4), "home"),
        stay("s", "skilled-nursing", D(2026, 3, 4), D(2026, 3, 20), "home"),
        stay("c", "acute-hospital", D(2026, 4, 1), D(2026, 4, 2), status="cancelled"),
    ]
    assert discharged(stays) == ["h"]


# --- where the person is now ------------------------------------------------------------------------


def now(stays: list[Stay]) -> tuple[S, D] | None:
    found = current_setting(stays)
    return None if found is None else (found.setting, found.since)


def test_no_stays_no_setting() -> None:
    assert now([]) is None


def test_a_stay_in_progress_is_where_the_person_is() -> None:
    stays = [
        stay("h", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "snf"),
        stay("s", "skilled-nursing", D(2026, 1, 5), None, status="in-progress"),
    ]
    assert now(stays) == (S.SKILLED_NURSING, D(2026, 1, 5))


def test_after_the_last_discharge_the_person_is_where_it_sent_them() -> None:
    stays = [
        stay("h", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "snf"),
        stay("s", "skilled-nursing", D(2026, 1, 5), D(2026, 1, 20), "home"),
    ]
    assert now(stays) == (S.HOME, D(2026, 1, 20))


def test_a_ward_move_does_not_restart_the_clock() -> None:
    stays = [
        stay("er", "emergency", D(2026, 1, 1), D(2026, 1, 2)),
        stay("a", "acute-hospital", D(2026, 1, 2), D(2026, 1, 4)),
        stay("b", "acute-hospital", D(2026, 1, 4), None, status="in-progress"),
    ]
    assert now(stays) == (S.ACUTE_HOSPITAL, D(2026, 1, 2))


def test_a_readmission_via_home_counts_from_the_readmission() -> None:
    stays = [
        stay("h1", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "home"),
        stay("h2", "acute-hospital", D(2026, 1, 30), None, status="in-progress"),
    ]
    assert now(stays) == (S.ACUTE_HOSPITAL, D(2026, 1, 30))


def test_a_stay_that_ended_without_saying_where_to_leaves_the_setting_unknown() -> None:
    went_nowhere = [
        stay("h", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "snf"),
        stay("s", "skilled-nursing", D(2026, 1, 5), D(2026, 1, 20)),
    ]
    died = [stay("h", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "exp")]
    assert now(went_nowhere) is None
    assert now(died) is None


def test_planned_and_cancelled_stays_are_not_where_anyone_is() -> None:
    stays = [
        stay("h", "acute-hospital", D(2026, 1, 1), D(2026, 1, 5), "home"),
        stay("p", "skilled-nursing", D(2026, 2, 1), None, status="planned"),
        stay("c", "hospice", D(2026, 1, 10), None, status="cancelled"),
    ]
    assert now(stays) == (S.HOME, D(2026, 1, 5))
