"""The eligibility rules of mappings/eligibility-rules.json, applied to one patient's resources."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_cm.identify import RulesError, assess, fact_of, facts_from_resources, load_rules
from fhir_cm.identify import _rules as rules_module

from .population import PROFILES, SNOMED, condition, encounter, patient, profile_resources, screen

TODAY = dt.date(2026, 6, 1)
P = "p-1"


def reasons(resources: list[dict], *, open_case: bool = False) -> set[str]:
    facts = facts_from_resources(P, resources, open_case=open_case)
    return {r.reason.value for r in assess(facts, load_rules(), TODAY).reasons}


def ago(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_each_profile_gets_exactly_its_reasons(profile: str) -> None:
    resources = profile_resources(P, profile, TODAY)
    facts = facts_from_resources(P, resources)
    assessment = assess(facts, load_rules(), TODAY)
    assert {r.reason.value for r in assessment.reasons} == PROFILES[profile]
    assert assessment.eligible == bool(PROFILES[profile])


def test_two_admissions_inside_the_year_count_and_the_window_edge_is_a_year() -> None:
    assert "frequent-admissions" in reasons([encounter(P, "IMP", ago(365)), encounter(P, "IMP", ago(10))])
    assert "frequent-admissions" not in reasons([encounter(P, "IMP", ago(366)), encounter(P, "IMP", ago(10))])


def test_cancelled_and_planned_visits_do_not_count() -> None:
    visits = [encounter(P, "IMP", ago(100), status="cancelled"), encounter(P, "IMP", ago(50), status="planned")]
    assert reasons([*visits, encounter(P, "IMP", ago(10))]) == set()


def test_a_readmission_is_an_admission_within_thirty_days_of_a_discharge() -> None:
    first = encounter(P, "IMP", ago(80), 5)  # discharged 75 days ago
    assert "readmission" in reasons([first, encounter(P, "IMP", ago(45))])  # 30 days later
    assert "readmission" not in reasons([first, encounter(P, "IMP", ago(44))])  # 31 days later


def test_a_readmission_counts_from_the_last_discharge_not_the_last_admission() -> None:
    """A long stay with a shorter one inside it (an ICU encounter not recorded as ``partOf`` it): the
    next admission, 21 days after the long stay's discharge, was measured from the shorter one's
    (33 days) and was no readmission."""
    long_stay = encounter(P, "IMP", ago(60), 19)  # discharged 41 days ago
    inside = encounter(P, "IMP", ago(56), 3)  # out of the ICU 53 days ago
    assert "readmission" in reasons([long_stay, inside, encounter(P, "IMP", ago(20))])
    assert "readmission" not in reasons([long_stay, inside, encounter(P, "IMP", ago(10))])  # 31 days


@pytest.fixture
def clock_in_utc() -> Iterator[None]:
    """fhir-cm's process on UTC (as containers run), whatever the machine's zone."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_an_admission_this_morning_east_of_fhir_cms_clock_counts_today(clock_in_utc: None) -> None:
    """Sydney, 08:30 on 1 June, is 22:30 UTC on 31 May, fhir-cm's today: the readmission the chart
    opens on was taken as one of tomorrow and not counted, until midnight UTC."""
    today = dt.date(2026, 5, 31)
    earlier = encounter(P, "IMP", dt.date(2026, 5, 10), 10)
    later = encounter(P, "IMP", today)
    later["period"] = {"start": "2026-06-01T08:30:00+10:00"}
    assessment = assess(facts_from_resources(P, [earlier, later]), load_rules(), today)
    assert {r.reason.value for r in assessment.reasons} == {"frequent-admissions", "readmission"}
    [readmitted] = [r for r in assessment.reasons if r.rule == "readmission"]
    assert readmitted.evidence == ["2026-05-31"]
    # A day as written (no time, so no zone) stays that day.
    dated = encounter(P, "IMP", dt.date(2026, 5, 31))
    assert facts_from_resources(P, [dated]).encounters[0].start == dt.date(2026, 5, 31)


def test_three_emergency_visits_make_a_frequent_visitor_two_do_not() -> None:
    assert reasons([encounter(P, "EMER", ago(d)) for d in (100, 50, 5)]) == {"frequent-ed-visits"}
    assert reasons([encounter(P, "EMER", ago(d)) for d in (100, 5)]) == set()


def test_a_condition_counts_once_however_many_chronic_codings_it_carries() -> None:
    both = condition(P, "E11.9")
    both["code"]["coding"].append({"system": SNOMED, "code": "44054006"})
    assert reasons([both, condition(P, "I10"), condition(P, "J44.1")]) == {"multiple-comorbidities"}
    assert reasons([both, condition(P, "I10")]) == set()


def test_a_condition_recorded_again_counts_once() -> None:
    """A diagnosis recorded at each visit, more or less specific (E11.9, then E11.65), is one chronic
    condition, not three: an EHR's encounter diagnoses made a patient with diabetes and hypertension
    "3 chronic conditions"."""
    again = [condition(P, "E11.9"), condition(P, "E11.65"), condition(P, "E11.9")]
    assert reasons([*again, condition(P, "I10")]) == set()
    facts = facts_from_resources(P, [*again, condition(P, "I10"), condition(P, "J44.1")])
    [reason] = assess(facts, load_rules(), TODAY).reasons
    assert reason.text == "3 chronic conditions"
    # Coded in both systems, it is the one recorded in either.
    both = condition(P, "E11.9")
    both["code"]["coding"].append({"system": SNOMED, "code": "44054006"})
    assert reasons([condition(P, "44054006", SNOMED), both, condition(P, "E11.2"), condition(P, "I10")]) == set()


def test_snomed_codes_are_matched_exactly_and_icd10_by_prefix() -> None:
    assert reasons([condition(P, "363346000", SNOMED)]) == {"complex-condition"}
    assert reasons([condition(P, "3633460", SNOMED)]) == set()
    assert reasons([condition(P, "C50.911")]) == {"complex-condition"}
    assert reasons([condition(P, "N18.6")]) == {"complex-condition"}
    assert reasons([condition(P, "N18.3")]) == set()  # one chronic condition only


def test_a_positive_screen_inside_the_year_gives_social_needs() -> None:
    assert reasons([screen(P, ago(10), positive=True, panel="93025-5")]) == {"social-needs"}
    assert reasons([screen(P, ago(400), positive=True)]) == set()
    assert reasons([screen(P, ago(10), positive=False)]) == set()


def test_a_positive_answer_code_makes_a_screen_positive_without_an_interpretation() -> None:
    obs = screen(P, ago(10), positive=False)
    del obs["interpretation"]
    obs["component"] = [
        {
            "code": {"text": "housing"},
            "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA33-6"}]},
        }
    ]
    assert reasons([obs]) == {"social-needs"}


def test_r5_encounters_read_the_same() -> None:
    r5 = encounter(P, "IMP", ago(20))
    r5["class"] = [{"coding": [r5.pop("class")]}]
    r5["actualPeriod"] = r5.pop("period")
    assert reasons([r5, encounter(P, "IMP", ago(100))]) == {"frequent-admissions"}


def test_someone_in_an_open_case_or_deceased_is_excluded_with_the_reason() -> None:
    resources = profile_resources(P, "high-risk", TODAY)
    in_case = assess(facts_from_resources(P, resources, open_case=True), load_rules(), TODAY)
    assert (in_case.eligible, in_case.excluded, in_case.score) == (False, "already in an open case", 3)
    dead = assess(facts_from_resources(P, [patient(P, deceased=True), *resources[1:]]), load_rules(), TODAY)
    assert (dead.eligible, dead.excluded) == (False, "deceased")


def test_the_score_is_the_sum_of_the_weights_and_the_reasons_carry_their_evidence() -> None:
    resources = [*profile_resources(P, "readmitted", TODAY), condition(P, "C34.90")]
    assessment = assess(facts_from_resources(P, resources), load_rules(), TODAY)
    weights = {r.id: r.weight for r in load_rules().rules}
    assert assessment.score == weights["frequent-admissions"] + weights["readmission"] + weights["high-risk-condition"]
    by_rule = {r.rule: r for r in assessment.reasons}
    assert by_rule["high-risk-condition"].evidence == ["http://hl7.org/fhir/sid/icd-10-cm|C34.90"]
    assert by_rule["frequent-admissions"].text == "2 inpatient admissions in 365 days"
    assert assessment.eligibility[0].value == "frequent-admissions"


def test_other_patients_resources_are_not_taken_as_this_ones() -> None:
    assert reasons([condition("someone-else", "C34.90")]) == set()


def test_a_broken_rules_file_is_refused_saying_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads((rules_module.mappings_dir() / rules_module.RULES_FILE).read_text())
    data["rules"][0]["weight"] = -1
    (tmp_path / rules_module.RULES_FILE).write_text(json.dumps(data))
    monkeypatch.setattr(rules_module, "mappings_dir", lambda: tmp_path)
    with pytest.raises(RulesError, match=r"rules\.0\.weight"):
        rules_module.load_rules.__wrapped__()
    data["rules"][0]["weight"] = 1
    data["rules"][3]["value_set"] = "nope"
    (tmp_path / rules_module.RULES_FILE).write_text(json.dumps(data))
    with pytest.raises(RulesError, match="unknown value set 'nope'"):
        rules_module.load_rules.__wrapped__()


def test_a_patient_record_merged_into_another_is_excluded_naming_the_one_that_replaced_it() -> None:
    merged = {**patient(P), "active": False, "link": [{"other": {"reference": "Patient/p-2"}, "type": "replaced-by"}]}
    resources = profile_resources(P, "high-risk", TODAY)[1:]
    assessment = assess(facts_from_resources(P, [merged, *resources]), load_rules(), TODAY)
    assert (assessment.eligible, assessment.excluded) == (False, "merged into Patient/p-2")
    # The surviving record (it links back with "replaces") and a mere "seealso" link stay candidates.
    for kind in ("replaces", "seealso"):
        linked = {**patient(P), "link": [{"other": {"reference": "Patient/p-2"}, "type": kind}]}
        assert assess(facts_from_resources(P, [linked, *resources]), load_rules(), TODAY).eligible


def test_a_stay_recorded_as_a_parent_and_its_ward_encounters_is_one_admission() -> None:
    parent = encounter(P, "IMP", ago(40), 10, rid="stay")
    wards = [
        {**encounter(P, "IMP", ago(40), 2, rid="ward-1"), "partOf": {"reference": "Encounter/stay"}},
        {**encounter(P, "IMP", ago(38), 8, rid="ward-2"), "partOf": {"reference": "Encounter/stay/_history/2"}},
    ]
    assert reasons([parent, *wards]) == set()  # not 3 admissions, and no readmission within the stay
    # A second stay makes two admissions, its ward encounter still folded in.
    again = encounter(P, "IMP", ago(5), 2, rid="again")
    ward = {**encounter(P, "IMP", ago(5), 1, rid="ward-3"), "partOf": {"reference": "Encounter/again"}}
    facts = facts_from_resources(P, [parent, *wards, again, ward])
    by_rule = {r.rule: r for r in assess(facts, load_rules(), TODAY).reasons}
    assert by_rule["frequent-admissions"].evidence == [ago(40).isoformat(), ago(5).isoformat()]
    assert by_rule["readmission"].evidence == [ago(5).isoformat()]  # 25 days after the stay's discharge


def test_a_sub_encounter_whose_parent_is_not_an_admission_still_counts() -> None:
    # The parent was not read (or is an emergency visit): the inpatient part is the admission.
    ed = encounter(P, "EMER", ago(30), rid="ed")
    admitted = {**encounter(P, "IMP", ago(30), 3, rid="adm"), "partOf": {"reference": "Encounter/ed"}}
    orphan = {**encounter(P, "IMP", ago(200), 3, rid="orphan"), "partOf": {"reference": "Encounter/unseen"}}
    assert "frequent-admissions" in reasons([ed, admitted, orphan])


@pytest.mark.parametrize(
    "abatement",
    [{"abatementDateTime": "2025-01-10"}, {"abatementAge": {"value": 40, "unit": "a"}}, {"abatementString": "2019"}],
)
def test_an_abated_condition_without_a_clinical_status_does_not_count(abatement: dict) -> None:
    abated = {k: v for k, v in condition(P, "C34.90").items() if k != "clinicalStatus"}
    assert reasons([{**abated, **abatement}]) == set()
    assert reasons([abated]) == {"complex-condition"}  # no status and no abatement: it stands


def test_which_screen_statuses_count_is_read_from_the_rules_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered or preliminary screen counts and a cancelled or entered-in-error one does not — as the
    file says: a programme that waits for final answers lists the others there, with no code change."""
    asked = {s: {**screen(P, ago(10), positive=True), "status": s} for s in ("registered", "preliminary", "final")}
    kept = {s: reasons([r]) for s, r in asked.items()}
    assert kept == {s: {"social-needs"} for s in asked}
    for status in ("cancelled", "entered-in-error"):
        assert reasons([{**screen(P, ago(10), positive=True), "status": status}]) == set()

    data = json.loads((rules_module.mappings_dir() / rules_module.RULES_FILE).read_text())
    assert data["ignored_screen_statuses"] == ["cancelled", "entered-in-error"]
    data["ignored_screen_statuses"] = ["cancelled", "entered-in-error", "registered", "preliminary"]
    (tmp_path / rules_module.RULES_FILE).write_text(json.dumps(data))
    monkeypatch.setattr(rules_module, "mappings_dir", lambda: tmp_path)
    waiting = rules_module.load_rules.__wrapped__()
    counted = {s: fact_of(r, waiting) is not None for s, r in asked.items()}
    assert counted == {"registered": False, "preliminary": False, "final": True}


@pytest.mark.parametrize(
    ("says", "said"),
    [
        ("a high-risk condition ({code})", "unknown name 'code'"),
        ("a high-risk condition ({codes)", "not a sentence"),
        ("a high-risk condition ({})", "unknown name ''"),
        ("aged {age}", "unknown name 'age'"),
    ],
)
def test_a_sentence_naming_what_its_rule_has_not_is_refused_on_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, says: str, said: str
) -> None:
    """A typo in a rule's ``says`` loaded, and the first patient meeting the rule stopped the ranking
    (or a CDS call) with a KeyError; the file is refused naming the rule, as a broken threshold is."""
    data = json.loads((rules_module.mappings_dir() / rules_module.RULES_FILE).read_text())
    [high_risk] = [r for r in data["rules"] if r["id"] == "high-risk-condition"]
    high_risk["says"] = says
    (tmp_path / rules_module.RULES_FILE).write_text(json.dumps(data))
    monkeypatch.setattr(rules_module, "mappings_dir", lambda: tmp_path)
    with pytest.raises(RulesError, match=said):
        rules_module.load_rules.__wrapped__()


@pytest.mark.parametrize(("rule_id", "left_out", "said"), [
    ("high-risk-condition", "value_set", "needs a value_set"),
    ("multiple-chronic-conditions", "value_set", "needs a value_set"),
    ("frequent-admissions", "encounter", "needs an encounter"),
])  # fmt: skip
def test_a_rule_left_without_what_its_kind_counts_is_refused_on_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rule_id: str, left_out: str, said: str
) -> None:
    """A condition rule without its value set loaded, and the first patient assessed stopped the
    screening (or a CDS call) with an AssertionError; an encounter count without its encounter kind
    loaded and never counted anyone, silently."""
    data = json.loads((rules_module.mappings_dir() / rules_module.RULES_FILE).read_text())
    [rule] = [r for r in data["rules"] if r["id"] == rule_id]
    del rule[left_out]
    (tmp_path / rules_module.RULES_FILE).write_text(json.dumps(data))
    monkeypatch.setattr(rules_module, "mappings_dir", lambda: tmp_path)
    with pytest.raises(RulesError, match=said):
        rules_module.load_rules.__wrapped__()


def test_icd10_named_by_its_oid_in_the_rules_matches_by_prefix_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some EHRs name ICD-10-CM by its OID: a hospital listing its codes under that system (a change of
    the data only) had its entries matched exactly — ``E11`` matched no ``E11.9``, no one was counted."""
    oid = "urn:oid:2.16.840.1.113883.6.90"
    data = json.loads((rules_module.mappings_dir() / rules_module.RULES_FILE).read_text())
    for value_set in data["value_sets"].values():
        value_set[oid] = value_set["http://hl7.org/fhir/sid/icd-10-cm"]
    (tmp_path / rules_module.RULES_FILE).write_text(json.dumps(data))
    monkeypatch.setattr(rules_module, "mappings_dir", lambda: tmp_path)
    rules = rules_module.load_rules.__wrapped__()
    coded = [condition(P, code, oid, rid=f"c-{code}") for code in ("E11.9", "I10", "J44.1", "N18.6")]
    assessment = assess(facts_from_resources(P, [patient(P), *coded]), rules, TODAY)
    assert {r.rule: r.evidence for r in assessment.reasons} == {
        "multiple-chronic-conditions": [f"{oid}|{c}" for c in ("E11.9", "I10", "J44.1", "N18.6")],
        "high-risk-condition": [f"{oid}|N18.6"],
    }


@pytest.mark.parametrize("where", ["panels", "positive_answers", "questions", "answer_categories"])
def test_a_screening_code_without_its_system_is_refused_naming_it(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Codings are read as ``system|code``: a panel written ``96777-8`` exported the screens (a search
    by code takes any system) and then counted none of them, with no word of why."""
    data = json.loads((rules_module.mappings_dir() / rules_module.RULES_FILE).read_text())
    if where == "panels":
        data["screens"]["panels"] = {"96777-8": "AHC HRSN"}
        del data["screens"]["questions"]
    elif where == "questions":
        data["screens"]["questions"] = {"http://loinc.org|96777-8": {"71802-3": ["http://loinc.org|LA31995-6"]}}
    elif where == "answer_categories":
        data["screens"]["answer_categories"] = ["survey"]
    else:
        data["screens"]["positive_answers"] = ["LA33-6"]
    (tmp_path / rules_module.RULES_FILE).write_text(json.dumps(data))
    monkeypatch.setattr(rules_module, "mappings_dir", lambda: tmp_path)
    with pytest.raises(RulesError, match=rf"screens\.{where}: .*system\|code"):
        rules_module.load_rules.__wrapped__()


def test_questions_listed_for_what_is_no_panel_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A panel's questions listed under a code the panels do not have would never be asked."""
    data = json.loads((rules_module.mappings_dir() / rules_module.RULES_FILE).read_text())
    data["screens"]["questions"]["http://loinc.org|99595-1"] = {"http://loinc.org|71802-3": []}
    (tmp_path / rules_module.RULES_FILE).write_text(json.dumps(data))
    monkeypatch.setattr(rules_module, "mappings_dir", lambda: tmp_path)
    with pytest.raises(RulesError, match=r"screens: .*questions are listed for what is no panel.*99595-1"):
        rules_module.load_rules.__wrapped__()
