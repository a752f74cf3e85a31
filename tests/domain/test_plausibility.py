"""The rules of what can be true of a case: dates, overlapping inpatient stays, an open case that ended."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from fhir_cm.domain import (
    Case,
    CaseStatus,
    Contact,
    ImplausibleCase,
    Plausibility,
    case_breaches,
    check_plausible,
    new_breaches,
)
from fhir_cm.synthetic import DEFAULT_TODAY, generate_cases

TODAY = dt.date(2025, 6, 30)
RULES = Plausibility(today=TODAY)


def case(**fields: Any) -> Case:
    base: dict[str, Any] = {
        "id": "c1",
        "programme": "health-care",
        "period": {"start": "2025-01-10"},
        "patient": {"kind": "patient", "id": "p1"},
    }
    return Case.model_validate(base | fields)


def stay(i: str, setting: str, start: str, end: str | None, status: str = "finished") -> dict[str, Any]:
    return {"id": i, "setting": setting, "start": start, "end": end, "status": status}


def rules_broken(c: Case, rules: Plausibility = RULES) -> list[tuple[str, str]]:
    return [(b.rule, b.field) for b in case_breaches(c, rules)]


def test_a_case_that_could_be_true_breaks_nothing() -> None:
    c = case(
        contacts=[{"id": "k1", "date": "2025-07-01", "mode": "phone"}],  # tomorrow: within the tolerance
        goals=[{"id": "g1", "description": "walk", "due": "2026-06-01"}],  # due dates are plans
        stays=[
            stay("s1", "acute-hospital", "2025-02-01", "2025-02-05"),
            stay("s2", "skilled-nursing", "2025-02-05", "2025-02-20"),  # a same-day transfer
            stay("s3", "home-health", "2025-02-10", "2025-03-01"),  # not inpatient: may overlap
            stay("s4", "acute-hospital", "2026-01-01", None, status="planned"),
        ],
    )
    assert rules_broken(c) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"contacts": [{"id": "k1", "date": "2030-01-01", "mode": "face-to-face"}]},
            ("future-date", "contacts.0.date"),
        ),
        (
            {"contacts": [{"id": "k1", "date": "2025-07-02", "mode": "face-to-face"}]},
            ("future-date", "contacts.0.date"),
        ),
        (
            {"stays": [stay("s1", "acute-hospital", "9999-01-01", None, "in-progress")]},
            ("implausible-date", "stays.0.start"),
        ),
        ({"stays": [stay("s1", "acute-hospital", "2025-06-01", "2025-08-01")]}, ("future-date", "stays.0.end")),
        (
            {"stays": [stay("s1", "acute-hospital", "2025-08-01", None, status="in-progress")]},
            ("future-date", "stays.0.start"),
        ),
        ({"period": {"start": "1850-01-01"}}, ("implausible-date", "period.start")),
        ({"goals": [{"id": "g1", "description": "walk", "due": "2199-01-01"}]}, ("implausible-date", "goals.0.due")),
        (
            {"needs": [{"id": "n1", "domain": "social", "finding": "x", "recorded": "2025-12-01"}]},
            ("future-date", "needs.0.recorded"),
        ),
        (
            {"referrals": [{"id": "r1", "kind": "housing", "service": "x", "authored": "2026-01-01"}]},
            ("future-date", "referrals.0.authored"),
        ),
    ],
)
def test_dates_that_cannot_be_true_are_named(fields: dict[str, Any], expected: tuple[str, str]) -> None:
    broken = case_breaches(case(**fields), RULES)
    assert [(b.rule, b.field) for b in broken] == [expected]
    assert "2030" not in broken[0].message and "9999" not in broken[0].message  # no client value echoed


def test_the_tolerance_is_configurable() -> None:
    c = case(contacts=[{"id": "k1", "date": "2025-07-03", "mode": "phone"}])
    assert rules_broken(c) == [("future-date", "contacts.0.date")]
    assert rules_broken(c, Plausibility(today=TODAY, future_tolerance_days=3)) == []
    assert rules_broken(
        case(contacts=[{"id": "k1", "date": "2025-07-01", "mode": "phone"}]),
        Plausibility(today=TODAY, future_tolerance_days=0),
    ) == [("future-date", "contacts.0.date")]


@pytest.mark.parametrize(
    "stays",
    [
        [
            stay("a", "acute-hospital", "2025-02-01", "2025-02-10"),
            stay("b", "acute-hospital", "2025-02-05", "2025-02-12"),
        ],
        [
            stay("a", "acute-hospital", "2025-02-01", "2025-02-10"),
            stay("b", "skilled-nursing", "2025-02-09", None, "in-progress"),
        ],
        [
            stay("a", "psychiatric", "2025-02-01", None, "in-progress"),
            stay("b", "inpatient-rehabilitation", "2025-03-01", None, "in-progress"),
        ],
        [
            stay("b", "long-term-care", "2025-02-03", "2025-02-04"),
            stay("a", "acute-hospital", "2025-02-01", "2025-02-10"),
        ],
    ],
)
def test_a_person_is_in_one_inpatient_place_at_a_time(stays: list[dict[str, Any]]) -> None:
    broken = case_breaches(case(stays=stays), RULES)
    assert [b.rule for b in broken] == ["overlapping-stays"]
    assert broken[0].field.startswith("stays.") and broken[0].field.endswith(".start")
    assert broken[0].entity == "b" and "a" in broken[0].message.split("inpatient stay ")[1]


def test_overlaps_with_cancelled_or_planned_stays_do_not_count() -> None:
    stays = [
        stay("a", "acute-hospital", "2025-02-01", "2025-02-10"),
        stay("b", "acute-hospital", "2025-02-05", "2025-02-12", status="cancelled"),
    ]
    assert rules_broken(case(stays=stays)) == []


def test_a_stay_ending_before_it_starts_is_refused_by_the_model() -> None:
    with pytest.raises(ValidationError, match="before it starts"):
        case(stays=[stay("a", "acute-hospital", "2025-02-10", "2025-02-01")])


def test_an_open_case_with_a_past_end_is_a_breach() -> None:
    c = case(status="referred", period={"start": "2025-01-10", "end": "2025-05-01"})
    assert rules_broken(c) == [("open-case-ended", "period.end")]
    planned = case(status="active", period={"start": "2025-01-10", "end": "2025-12-31"})  # a planned end
    assert rules_broken(planned) == []


def test_reopening_clears_the_end_and_closing_sets_it() -> None:
    c = case(status_history=[{"status": "active", "start": "2025-01-10"}], status="active")
    c.change_status(CaseStatus.CLOSED, dt.date(2025, 5, 1), "Goals met")
    assert c.period.end == dt.date(2025, 5, 1)
    c.change_status(CaseStatus.REFERRED, dt.date(2025, 5, 3), "Re-referred")
    assert c.period.end is None and c.status is CaseStatus.REFERRED
    assert rules_broken(c) == []
    c.change_status(CaseStatus.CANCELLED, dt.date(2025, 5, 4), "Withdrawn")
    assert c.period.end == dt.date(2025, 5, 4)


def test_only_breaches_a_change_brings_in_are_new() -> None:
    imported = case(contacts=[{"id": "k1", "date": "2030-01-01", "mode": "phone"}])
    more = imported.model_copy(update={"contacts": [*imported.contacts, Contact(id="k2", date=TODAY, mode="phone")]})
    assert new_breaches(imported, more, RULES) == []
    check_plausible(more, RULES, before=imported)  # an old breach does not block other work
    moved = imported.model_copy(update={"contacts": [Contact(id="k1", date=dt.date(2031, 1, 1), mode="phone")]})
    assert [b.field for b in new_breaches(imported, moved, RULES)] == ["contacts.0.date"]
    with pytest.raises(ImplausibleCase, match=r"contacts\.0\.date"):
        check_plausible(imported, RULES)


@pytest.mark.parametrize(
    "value", [0, "0", 1717200000, "1717200000", "2024-06-01T00:00:00", 1.5, True, "20240601", "2024-02-30"]
)
def test_a_date_is_a_calendar_day_not_a_timestamp(value: object) -> None:
    """Read from Python or from JSON alike (pydantic reads a number, or a string of one, as a Unix
    timestamp: in JSON even a strict date does)."""
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        Contact(date=value, mode="phone")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        Contact.model_validate_json(json.dumps({"date": value, "mode": "phone"}))
    assert Contact(date="2024-06-01", mode="phone").date == dt.date(2024, 6, 1)
    assert Contact(date=dt.date(2024, 6, 1), mode="phone").date == dt.date(2024, 6, 1)
    assert Contact.model_validate_json('{"date": "2024-06-01", "mode": "phone"}').date == dt.date(2024, 6, 1)


def test_a_datetime_is_no_day() -> None:
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        Contact(date=dt.datetime(2024, 6, 1), mode="phone")  # type: ignore[arg-type]


def test_synthetic_journeys_break_no_rule() -> None:
    for c in generate_cases(150, seed=11):
        assert case_breaches(c, Plausibility(today=DEFAULT_TODAY)) == [], c.id
