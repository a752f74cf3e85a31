"""The age rules of mappings/eligibility-rules.json: the Patient's ``birthDate`` (a day, a month or a
year) read on the screening's day, claimed only where every day the birth date allows gives that age,
and counted only with another reason (``with_any``): older adults with hospital use or several chronic
conditions, children with a complex condition."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.identify import Assessment, RulesError, assess, facts_from_resources, load_rules
from fhir_cm.identify import _rules as rules_module

from .population import condition, encounter, patient

TODAY = dt.date(2026, 6, 1)
P = "p-age"


def born(birth_date: Any, *, deceased: bool = False) -> dict[str, Any]:
    out = patient(P, deceased=deceased)
    out["birthDate"] = birth_date
    return out


def two_admissions() -> list[dict[str, Any]]:
    return [encounter(P, "IMP", TODAY - dt.timedelta(days=100), 3), encounter(P, "IMP", TODAY - dt.timedelta(days=40))]


def judged(resources: list[dict[str, Any]], on: dt.date = TODAY) -> Assessment:
    return assess(facts_from_resources(P, resources), load_rules(), on)


def age_reasons(resources: list[dict[str, Any]], on: dt.date = TODAY) -> dict[str, str]:
    return {
        r.rule: r.text for r in judged(resources, on).reasons if r.rule in ("older-adult", "child-complex-condition")
    }


def test_an_older_adult_with_hospital_use_gets_the_reason_from_the_65th_birthday() -> None:
    assert age_reasons([born("1961-06-01"), *two_admissions()]) == {
        "older-adult": "aged 65, with 2 inpatient admissions in 365 days"
    }
    assert age_reasons([born("1961-06-02"), *two_admissions()]) == {}  # 65 tomorrow
    assessment = judged([born("1961-06-01"), *two_admissions()])
    assert assessment.score == 3 + 1 and [r.value for r in assessment.eligibility] == [
        "frequent-admissions",
        "older-adult",
    ]


def test_age_alone_is_no_reason() -> None:
    """A large share of any hospital's patients are 65 or over: age counts only with another reason."""
    assessment = judged([born("1930-01-01"), encounter(P, "IMP", TODAY - dt.timedelta(days=10))])
    assert assessment.reasons == [] and not assessment.eligible


def test_a_partial_birth_date_gives_an_age_only_where_every_day_it_allows_gives_it() -> None:
    # Born in 1961: 64 or 65 on 1 June 2026 — not taken as 65.
    assert age_reasons([born("1961"), *two_admissions()]) == {}
    # Born in May 1961: 65 whichever day; in June 1961: 64 or 65.
    assert age_reasons([born("1961-05"), *two_admissions()]) == {
        "older-adult": "aged 65, with 2 inpatient admissions in 365 days"
    }
    assert age_reasons([born("1961-06"), *two_admissions()]) == {}
    # Born in 1960: 65 or 66, both over the threshold — said as such, not as one of them.
    assert age_reasons([born("1960"), *two_admissions()]) == {
        "older-adult": "aged 65 or 66, with 2 inpatient admissions in 365 days"
    }


def test_a_child_with_a_complex_condition_and_a_birth_year_straddling_eighteen() -> None:
    cancer = condition(P, "C34.90")
    assert age_reasons([born("2008-06-02"), cancer]) == {
        "child-complex-condition": "a child aged 17, with a high-risk condition (http://hl7.org/fhir/sid/icd-10-cm|C34.90)"
    }
    assert age_reasons([born("2008-06-01"), cancer]) == {}  # 18 today
    assert age_reasons([born("2008"), cancer]) == {}  # 17 or 18: not taken as a child
    assert set(age_reasons([born("2009"), cancer])) == {"child-complex-condition"}  # 16 or 17
    assessment = judged([born("2009"), cancer])
    assert assessment.score == 3 + 2 and [r.value for r in assessment.eligibility] == ["complex-condition"]


def test_the_age_is_that_of_the_screening_day_not_of_the_clock() -> None:
    resources = [
        born("1961-06-01"),
        encounter(P, "IMP", dt.date(2026, 1, 10)),
        encounter(P, "IMP", dt.date(2026, 3, 1)),
    ]
    assert "older-adult" in age_reasons(resources, on=dt.date(2026, 6, 1))
    assert age_reasons(resources, on=dt.date(2026, 5, 31)) == {}


def test_a_leap_day_birthday_comes_on_the_first_of_march_in_a_common_year() -> None:
    resources = [
        born("1960-02-29"),
        encounter(P, "IMP", dt.date(2025, 1, 10)),
        encounter(P, "IMP", dt.date(2025, 2, 1)),
    ]
    assert age_reasons(resources, on=dt.date(2025, 2, 28)) == {}  # still 64
    assert "older-adult" in age_reasons(resources, on=dt.date(2025, 3, 1))


def test_ages_over_89_are_said_as_90_or_older_and_no_birth_date_shows() -> None:
    """The text goes into the referral and the EHR's card: an age over 89 identifies a person."""
    assessment = judged([born("1931-03-14"), *two_admissions()])
    [older] = [r for r in assessment.reasons if r.rule == "older-adult"]
    assert older.text.startswith("aged 90 or older") and older.evidence == ["aged 90 or older"]
    assert "1931" not in assessment.model_dump_json()
    assert age_reasons([born("1936"), *two_admissions()])["older-adult"].startswith("aged 89 or older")


@pytest.mark.parametrize(
    "birth_date", [None, "", "1961-02-30", "61", "1961-13", "June 1961", 1961, "0000", "2030-01-01"]
)
def test_no_usable_birth_date_is_no_age(birth_date: Any) -> None:
    """Junk, a day that does not exist, or a birth after the screening day: no age, no error."""
    assessment = judged([born(birth_date), *two_admissions()])
    assert [r.rule for r in assessment.reasons] == ["frequent-admissions"] and assessment.eligible


def test_a_deceased_older_adult_is_still_excluded() -> None:
    assessment = judged([born("1940-01-01", deceased=True), *two_admissions()])
    assert "older-adult" in {r.rule for r in assessment.reasons}
    assert not assessment.eligible and assessment.excluded == "deceased"


@pytest.fixture
def rules_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the rules file the loader reads instead of the shipped one."""
    shipped = rules_module.mappings_dir() / rules_module.RULES_FILE
    copy = tmp_path / rules_module.RULES_FILE
    copy.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(rules_module, "mappings_dir", lambda: tmp_path)
    load_rules.cache_clear()
    yield copy
    load_rules.cache_clear()


def edit_age_rule(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    rule = next(r for r in data["rules"] if r["id"] == "older-adult")
    rule.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del rule[key]
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"age_at_least": None}, "needs age_at_least or age_under"),
        ({"age_under": 60}, "age_at_least must be below age_under"),
        ({"with_any": ["no-such-rule"]}, "no-such-rule"),
        ({"with_any": ["child-complex-condition"]}, "child-complex-condition"),
        ({"kind": "condition-any", "value_set": "chronic"}, "belong to an age rule"),
    ],
)
def test_a_broken_age_rule_is_refused_naming_what_is_wrong(
    rules_file: Path, changes: dict[str, Any], said: str
) -> None:
    edit_age_rule(rules_file, **changes)
    with pytest.raises(RulesError, match=said):
        load_rules()


def test_an_age_rule_without_with_any_counts_age_alone(rules_file: Path) -> None:
    edit_age_rule(rules_file, with_any=[], says="aged {age}")
    assert age_reasons([born("1950-01-01")]) == {"older-adult": "aged 76"}
