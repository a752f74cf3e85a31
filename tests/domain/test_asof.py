"""A case as it stood on a past day: status from the history, what was dated by then, nothing later."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_cm.domain import Case, CaseStatus, StayStatus, case_as_of
from fhir_cm.domain._asof import _as_it_stands, _rebuilt
from fhir_cm.synthetic import DEFAULT_TODAY, generate_cases

D = dt.date.fromisoformat


def journey() -> Case:
    data: dict[str, Any] = {
        "id": "c1",
        "programme": "health-care",
        "status": "closed",
        "status_history": [
            {"status": "referred", "start": "2025-01-10", "end": "2025-01-15"},
            {"status": "active", "start": "2025-01-15", "end": "2025-04-01"},
            {"status": "on-hold", "start": "2025-04-01", "end": "2025-04-20"},
            {"status": "active", "start": "2025-04-20", "end": "2025-06-01"},
            {"status": "closed", "start": "2025-06-01", "reason": "Goals met"},
        ],
        "period": {"start": "2025-01-10", "end": "2025-06-01"},
        "patient": {"kind": "patient", "id": "p1"},
        "case_manager": {"kind": "practitioner", "id": "cm-2", "name": "Second Manager"},
        "team": [
            {
                "id": "t1",
                "role": "case-manager",
                "party": {"kind": "practitioner", "id": "cm-1"},
                "start": "2025-01-15",
                "end": "2025-03-01",
            },
            {
                "id": "t2",
                "role": "case-manager",
                "party": {"kind": "practitioner", "id": "cm-2", "name": "Second Manager"},
                "start": "2025-03-01",
                "end": "2025-06-01",
            },
        ],
        "needs": [
            {"id": "n1", "domain": "physical", "finding": "falls", "recorded": "2025-01-15", "resolved": "2025-05-01"},
            {"id": "n2", "domain": "social", "finding": "alone", "recorded": "2025-03-10"},
        ],
        "goals": [{"id": "g1", "description": "walk", "start": "2025-03-15", "due": "2025-05-15", "addresses": ["n2"]}],
        "contacts": [
            {"id": "k1", "date": "2025-01-16", "mode": "face-to-face"},
            {"id": "k2", "date": "2025-02-20", "mode": "face-to-face"},
            {"id": "k3", "date": "2025-05-10", "mode": "face-to-face"},
        ],
        "stays": [
            {
                "id": "s1",
                "setting": "acute-hospital",
                "start": "2025-02-01",
                "end": "2025-02-10",
                "discharge_disposition": "home",
            }
        ],
        "referrals": [
            {
                "id": "r1",
                "kind": "follow-up",
                "service": "gp",
                "authored": "2025-02-09",
                "for_stay": "s1",
                "status": "completed",
            }
        ],
    }
    return Case.model_validate(data)


def test_before_it_began_there_was_no_case() -> None:
    assert case_as_of(journey(), D("2025-01-09")) is None


def test_the_status_and_manager_of_the_day() -> None:
    on = case_as_of(journey(), D("2025-02-05"))
    assert on is not None
    assert (on.status, on.period.end, on.is_open) == (CaseStatus.ACTIVE, None, True)
    assert [h.status for h in on.status_history] == [CaseStatus.REFERRED, CaseStatus.ACTIVE]
    assert on.status_history[-1].end is None
    assert on.case_manager is not None and on.case_manager.id == "cm-1"
    assert [c.id for c in on.contacts] == ["k1"]
    (stay,) = on.stays  # admitted on 02-01, discharged later: still in hospital that day
    assert (stay.status, stay.end, stay.discharge_disposition) == (StayStatus.IN_PROGRESS, None, None)
    assert on.referrals == [] and [n.id for n in on.needs] == ["n1"] and on.goals == []


def test_later_days_see_more_and_the_end() -> None:
    held = case_as_of(journey(), D("2025-04-10"))
    assert held is not None and held.status is CaseStatus.ON_HOLD and held.case_manager.id == "cm-2"  # type: ignore[union-attr]
    assert [n.resolved for n in held.needs] == [None, None]
    closed = case_as_of(journey(), D("2025-06-30"))
    assert closed == journey()  # after everything happened: the case as it is


def test_every_synthetic_case_reads_on_every_day_and_never_gains_anything() -> None:
    for case in generate_cases(60, seed=5):
        for days in (0, 20, 90, 200):
            day = case.period.start + dt.timedelta(days=days)
            then = case_as_of(case, min(day, DEFAULT_TODAY))
            assert then is not None
            assert len(then.contacts) <= len(case.contacts) and len(then.stays) <= len(case.stays)
            assert all(c.date <= day for c in then.contacts)
            assert case_as_of(then, min(day, DEFAULT_TODAY)) == then


def test_a_case_cancelled_before_its_planned_period_reads_on_every_day() -> None:
    """An episode planned for 1 February to 1 March and cancelled on 15 January (its history older than its
    period, as a hospital's EpisodeOfCare keeps it): on a day of the period it stood cancelled, and its end
    read as the cancellation day, before its start, which no case can hold (the day's caseload and outcomes
    failed on it)."""
    case = Case.model_validate(
        {
            "id": "c2",
            "programme": "health-care",
            "status": "cancelled",
            "status_history": [
                {"status": "waitlist", "start": "2025-01-02", "end": "2025-01-15"},
                {"status": "cancelled", "start": "2025-01-15", "reason": "moved away"},
            ],
            "period": {"start": "2025-02-01", "end": "2025-03-01"},
            "patient": {"kind": "patient", "id": "p2"},
        }
    )
    on = case_as_of(case, D("2025-02-10"))
    assert on is not None and (on.status, on.period.start, on.period.end) == (
        CaseStatus.CANCELLED,
        D("2025-02-01"),
        D("2025-02-01"),
    )
    assert not on.is_open and case_as_of(case, D("2025-03-01")) == case


def _days_of(value: Any) -> set[dt.date]:
    """Every date ``value`` (a case dumped) records, and the days either side of each."""
    if isinstance(value, dict):
        return set().union(*(_days_of(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_days_of(v) for v in value)) if value else set()
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return {value - dt.timedelta(days=1), value, value + dt.timedelta(days=1)}
    return set()


def test_a_case_that_records_nothing_later_is_returned_as_the_rebuild_would_make_it() -> None:
    """The short way (the case itself, when it records nothing dated after the day) gives what the long
    way (made anew from what it records) gives, on every day that any of its dates could tip."""
    short = long = 0
    for case in [*generate_cases(120, seed=7), journey()]:
        for day in sorted(_days_of(case.model_dump())):
            if day < case.period.start:
                continue
            rebuilt = _rebuilt(case, day)
            assert case_as_of(case, day) == rebuilt
            if _as_it_stands(case, day):
                short += 1
                assert rebuilt == case
            else:
                long += 1
    assert short > 100 and long > 100  # both ways taken, many times


def test_a_case_whose_manager_left_its_team_reads_with_the_manager_in_charge_then() -> None:
    """Nothing dated after the day, yet the case names as its manager one whose place on the team ended
    before it (a hospital's CareTeam ahead of its EpisodeOfCare): the case as of that day names the one in
    charge then, not the case itself as it stands."""
    data = journey().model_dump(mode="json")
    data.update(
        status="active",
        status_history=[{"status": "active", "start": "2025-01-10"}],
        period={"start": "2025-01-10"},
        case_manager={"kind": "practitioner", "id": "cm-1"},
    )
    data["team"][1]["end"] = None
    case = Case.model_validate(data)
    then = case_as_of(case, D("2025-06-10"))
    assert then is not None and then.case_manager is not None
    assert then.case_manager.id == "cm-2"
    assert then == _rebuilt(case, D("2025-06-10"))
